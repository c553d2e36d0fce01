"""A training run: data -> preprocessing -> compiled loop -> evaluations, logs, checkpoints.

Run folder:
    config.json          everything needed to rebuild the run (config, preprocessing, data checksums)
    metrics.jsonl / .csv one row per evaluation: step, returns, normalized scores, mean losses
    checkpoints/         msgpack train carries (params, optimizer states, RNG key, step)
    learning_curve.png   written at the end
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from shiftrl import __version__
from shiftrl.addons import build_addons
from shiftrl.core.errors import ConfigError, DataError, ShiftRLError
from shiftrl.core.types import SOURCE, TARGET
from shiftrl.data.dataset import TransitionDataset
from shiftrl.data.preprocess import Preprocessor, apply, fit_preprocessor
from shiftrl.envs.reference import reference_scores
from shiftrl.learners import get_learner
from shiftrl.learners.base import Learner, LearnerSpec
from shiftrl.training import checkpoint
from shiftrl.training.config import RunConfig, validate_config
from shiftrl.training.evaluation import EvalResult, check_env_id, evaluate
from shiftrl.training.logger import RunLogger, window_means
from shiftrl.training.loop import (
    SamplerSpec,
    batch_counts,
    chunk_length,
    init_carry,
    make_pretrain_chunk,
    make_train_chunk,
    to_device,
)
from shiftrl.training.progress import TrainProgress

Callback = Callable[[dict], None]


# ---------------------------------------------------------------------------------------
# Policies loaded from a run
# ---------------------------------------------------------------------------------------
class Policy:
    """A trained policy acting on raw environment observations."""

    def __init__(
        self,
        learner: Learner,
        learner_state: Any,
        pre: Preprocessor,
        config: RunConfig,
        references: dict[str, tuple[float, float]] | None = None,
    ):
        self.learner, self.state, self.pre, self.config = learner, learner_state, pre, config
        self.references = references or {}
        self._act = jax.jit(learner.act)

    def unit_action(self, normalized_obs: np.ndarray) -> np.ndarray:
        return np.asarray(self._act(self.state, normalized_obs))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Raw observation(s) -> environment action(s), deterministic."""
        obs = np.asarray(obs, np.float32)
        single = obs.ndim == 1
        a = self.pre.action_to_env(self.unit_action(self.pre.obs(np.atleast_2d(obs))))
        return a[0] if single else a

    def evaluate(self, env_id: str, episodes: int = 10, seed: int = 0) -> EvalResult:
        return evaluate(self.unit_action, self.pre, env_id, episodes, seed, self.reference(env_id))

    def reference(self, env_id: str) -> tuple[float, float] | None:
        """The run's own reference scores for its eval envs, else the registry's."""
        return self.references.get(env_id) or reference_scores(env_id)


@dataclass
class Run:
    dir: Path
    config: RunConfig
    rows: list[dict]
    policy: Policy

    def score(self, which: str = "final") -> float:
        """Mean normalized score over eval envs: at the last evaluation, or the best one."""
        scores = [r.get("normalized_score") for r in self.rows]
        scores = [s for s in scores if s is not None]
        if not scores:
            return float("nan")
        return float(scores[-1] if which == "final" else max(scores))


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------
def check_shapes(target: TransitionDataset, sources: Sequence[TransitionDataset]) -> None:
    for s in sources:
        if (s.obs_dim, s.act_dim) != (target.obs_dim, target.act_dim):
            raise DataError(
                f"source '{s.metadata.name}' has obs dim {s.obs_dim} / action dim {s.act_dim} but target "
                f"'{target.metadata.name}' has {target.obs_dim} / {target.act_dim}"
            )


def resolve_eval_envs(config: RunConfig, target: TransitionDataset) -> list[str]:
    envs = list(config.eval_envs)
    if not envs and target.metadata.env_id:
        try:
            envs = [check_env_id(target.metadata.env_id)]
        except ConfigError:
            envs = []  # data from an environment we cannot build: train without evaluation
    resolved = [check_env_id(e) for e in envs]
    import gymnasium as gym

    for env_id in resolved:
        space = gym.spec(env_id)
        env = gym.make(space)
        try:
            obs_dim = int(np.prod(env.observation_space.shape))
            act_dim = int(np.prod(env.action_space.shape))
        finally:
            env.close()
        if (obs_dim, act_dim) != (target.obs_dim, target.act_dim):
            raise ConfigError(
                f"evaluation env {env_id} has obs dim {obs_dim} / action dim {act_dim} but the dataset has "
                f"{target.obs_dim} / {target.act_dim}"
            )
    return resolved


def select_target(config: RunConfig, target: TransitionDataset) -> TransitionDataset:
    """The target subset of the dynamics-shift protocols (whole episodes, seeded by the run)."""
    if config.target_fraction is None and config.target_count is None:
        return target
    from shiftrl.data.compose import subset_episodes

    if config.target_fraction is not None:
        return subset_episodes(target, fraction=config.target_fraction, seed=config.seed)
    return subset_episodes(target, transitions=config.target_count, seed=config.seed)


def annotated_arrays(
    datasets: Sequence[TransitionDataset], pre: Preprocessor, addons: Sequence[Any]
) -> list[dict[str, np.ndarray]]:
    """Each dataset's preprocessed arrays plus the add-ons' per-transition annotations."""
    out = []
    for i, d in enumerate(datasets):
        arrays = apply(d, pre)
        for ad in addons:
            arrays.update(ad.annotate(d, TARGET if i == 0 else SOURCE))
        out.append(arrays)
    return out


def pretrain_addons(learner, addons, sampler, carry, data, progress: bool = True):
    """Each add-on's pretraining phase (DARA's classifiers, SPOT's VAE, SSAR's IQL critic),
    in compiled chunks under a progress bar."""
    steps = max((ad.pretrain_steps for ad in addons), default=0)
    if steps == 0:
        return carry
    chunk = make_pretrain_chunk(learner, addons, sampler)
    length = chunk_length(steps, steps, 1000)
    names = "+".join(ad.name for ad in addons if ad.pretrain_steps)
    with TrainProgress(steps, 0, enabled=progress, title=f"pretrain {names}") as bar:
        for start in range(0, steps, length):
            carry, _ = chunk(carry, data, length, start)
            bar.advance(length)
    return carry


def build_learner(config: RunConfig, obs_dim: int, act_dim: int) -> Learner:
    spec = LearnerSpec(obs_dim, act_dim, config.steps)
    return get_learner(config.algo)(config.learner, spec)


def load_policy(run_dir: str | Path, step: int | None = None) -> Policy:
    """The policy of a run folder, from its latest (or a given) checkpoint."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise ShiftRLError(f"{run_dir}: not a shiftrl run folder (no config.json)")
    meta = json.loads(cfg_path.read_text())
    config = RunConfig.from_json(meta["config"])
    pre = Preprocessor.from_json(meta["preprocessor"])
    learner = build_learner(config, meta["obs_dim"], meta["act_dim"])
    addons = build_addons(config.addons, learner)
    template = init_carry(learner, addons, learner.spec, config.seed)
    path = (
        checkpoint.checkpoint_path(run_dir, step)
        if step is not None
        else checkpoint.latest(run_dir)
    )
    if path is None or not path.exists():
        raise ShiftRLError(f"{run_dir}: no checkpoint to load")
    _, carry = checkpoint.load(path, template)
    refs = {k: tuple(v) for k, v in meta.get("references", {}).items()}
    return Policy(learner, carry.learner, pre, config, refs)


def plot_learning_curve(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    envs = sorted(
        {
            k.split("/")[1]
            for r in rows
            for k in r
            if k.startswith("eval/") and k.endswith("/normalized_score")
        }
    )
    steps = [r["step"] for r in rows]
    use_norm = any(r.get(f"eval/{e}/normalized_score") is not None for r in rows for e in envs)
    key = "normalized_score" if use_norm else "return"
    for e in envs:
        ax.plot(steps, [r.get(f"eval/{e}/{key}") for r in rows], marker="o", label=e)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("normalized score" if use_norm else "return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if envs:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------
def train(
    config: RunConfig,
    target: TransitionDataset,
    sources: Sequence[TransitionDataset] = (),
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> Run:
    validate_config(config)
    check_shapes(target, sources)
    target = select_target(config, target)
    eval_envs = resolve_eval_envs(config, target)
    learner = build_learner(config, target.obs_dim, target.act_dim)
    addons = build_addons(config.addons, learner)
    if not sources and (needy := [ad.name for ad in addons if ad.needs_sources]):
        raise ConfigError(
            f"{needy[0]} acts on source-dynamics data and the run has none; add --source DATA"
        )
    datasets = [target, *sources]
    checksums = [d.checksum() for d in datasets]

    run_dir = (
        Path(out)
        if out is not None
        else Path("runs") / f"{config.algo}-{target.metadata.name}-s{config.seed}".replace("/", "_")
    )
    fresh = not (resume and (run_dir / "config.json").exists())
    if fresh and run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"run folder {run_dir} already exists; pass --resume to continue it or choose another --out"
        )

    if fresh:
        pre = fit_preprocessor(datasets, config.learner)
    else:
        meta = json.loads((run_dir / "config.json").read_text())
        if meta["checksums"] != checksums:
            raise DataError(
                f"{run_dir}: the datasets differ from those the run started with (checksum mismatch)"
            )
        pre = Preprocessor.from_json(meta["preprocessor"])

    references = {}
    for env_id in eval_envs:
        own = target.metadata.env_id == env_id and target.metadata.ref_min_score is not None
        ref = (
            (target.metadata.ref_min_score, target.metadata.ref_max_score)
            if own
            else reference_scores(env_id)
        )
        if ref is not None:
            references[env_id] = list(ref)

    sampler = SamplerSpec(
        counts=batch_counts(config.batch_size, [len(d) for d in datasets], config.source_fraction),
        domains=(TARGET, *([SOURCE] * len(sources))),
    )
    data = to_device(annotated_arrays(datasets, pre, addons))
    train_chunk = make_train_chunk(learner, addons, sampler)
    carry = init_carry(learner, addons, learner.spec, config.seed)

    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        logger = RunLogger(run_dir, config.tensorboard, config.wandb_project, config.to_json())
        start = 0
        if fresh:
            carry = pretrain_addons(learner, addons, sampler, carry, data, progress)
            meta = {
                "shiftrl_version": __version__,
                "config": config.to_json(),
                "preprocessor": pre.to_json(),
                "obs_dim": target.obs_dim,
                "act_dim": target.act_dim,
                "datasets": [d.summary() for d in datasets],
                "checksums": checksums,
                "eval_envs": eval_envs,
                "references": references,
                "batch_counts": list(sampler.counts),
            }
            (run_dir / "config.json").write_text(json.dumps(meta, indent=2))
        else:
            ckpt = checkpoint.latest(run_dir)
            if ckpt is not None:
                start, carry = checkpoint.load(ckpt, carry)
            logger.truncate_after(start)
        loop = _Loop(config, learner, train_chunk, data, pre, eval_envs, references, run_dir)
        loop.run(carry, start, logger, progress, callbacks)
    except BaseException:
        # a run that never reached its first checkpoint leaves nothing behind
        if fresh and checkpoint.latest(run_dir) is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    logger.close()
    rows = logger.rows()
    plot_learning_curve(
        rows, run_dir / "learning_curve.png", f"{config.algo} on {target.metadata.name}"
    )
    policy = load_policy(run_dir)
    return Run(run_dir, config, rows, policy)


@dataclass
class _Loop:
    """What the host loop needs besides the carry: chunks, evaluations, checkpoints."""

    config: RunConfig
    learner: Learner
    train_chunk: Any
    data: Any
    pre: Preprocessor
    eval_envs: list[str]
    references: dict[str, list[float]]
    run_dir: Path

    def __post_init__(self):
        # jitted once per run; the learner state is an argument, never captured
        self.act = jax.jit(self.learner.act)

    def run(self, carry, start: int, logger: RunLogger, progress: bool, callbacks) -> None:
        config = self.config
        length = chunk_length(config.steps, config.eval_every, config.log_every)
        with TrainProgress(config.steps, start, enabled=progress, title=config.algo) as bar:
            step, window, t0 = start, [], time.perf_counter()
            while step < config.steps:
                carry, metrics = self.train_chunk(carry, self.data, length)
                step += length
                window.append(metrics)
                bar.advance(length)
                if step % config.eval_every and step != config.steps:
                    continue
                row = {"step": step}
                row.update(window_means(window))
                window = []
                row.update(self.evaluate(carry.learner))
                row["elapsed_s"] = time.perf_counter() - t0
                logger.log(row)
                checkpoint.save(self.run_dir, step, carry, config.keep_checkpoints)
                bar.report(row)
                for cb in callbacks:
                    cb(row)

    def evaluate(self, learner_state) -> dict[str, Any]:
        """Per-env returns and normalized scores, plus their averages over the eval envs."""
        if not self.eval_envs:
            return {}

        def policy(obs):
            return np.asarray(self.act(learner_state, obs))

        eval_seed = 10_000 + 1_000 * self.config.seed  # same start states at every evaluation
        row, scores, returns = {}, [], []
        for env_id in self.eval_envs:
            ref = self.references.get(env_id)
            res = evaluate(
                policy,
                self.pre,
                env_id,
                self.config.eval_episodes,
                eval_seed,
                tuple(ref) if ref else None,
            )
            row.update({f"eval/{env_id}/{k}": v for k, v in res.to_json().items() if k != "env"})
            returns.append(res.mean_return)
            if not np.isnan(res.normalized):
                scores.append(res.normalized)
        row["normalized_score"] = float(np.mean(scores)) if scores else None
        row["return"] = float(np.mean(returns))
        return row
