"""A training run: data -> preprocessing -> compiled loop -> evaluations, logs, checkpoints.

Run folder:
    config.json          everything needed to rebuild the run (config, preprocessing, data checksums)
    metrics.jsonl / .csv one row per evaluation: step, returns, normalized scores, mean losses
    checkpoints/         msgpack train carries (params, optimizer states, RNG key, step)
    learning_curve.png   written at the end
    .shiftrl-run         ownership marker; .shiftrl-lock: the lock of the run writing it
                         (training/rundir.py)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from shiftrl import __version__
from shiftrl.addons import build_addons
from shiftrl.core.errors import ConfigError, DataError, DivergenceError
from shiftrl.core.interrupt import StopRequest
from shiftrl.core.progress import Progress, ProgressArg
from shiftrl.core.types import SOURCE, TARGET
from shiftrl.data.dataset import TransitionDataset
from shiftrl.data.preprocess import Preprocessor, apply, fit_preprocessor
from shiftrl.envs.reference import reference_scores
from shiftrl.learners.base import Learner
from shiftrl.training import checkpoint, rundir
from shiftrl.training.config import RunConfig, validate_config
from shiftrl.training.evaluation import check_env_id, eval_seed, evaluate
from shiftrl.training.logger import MetricWindow, RunLogger
from shiftrl.training.loop import (
    MIXINGS,
    ChunkPacer,
    SamplerSpec,
    batch_counts,
    calibrate_carry,
    choose_seed_axes,
    init_carry,
    make_pretrain_chunk,
    make_train_chunk,
    next_boundary,
    stack_carries,
    to_device,
    unstack_carry,
)
from shiftrl.training.policy import (  # re-exported: the run-level API lives here
    Policy,
    Run,
    build_learner,
    load_policy,
    plot_learning_curve,
)

Callback = Callable[[dict], None]
__all__ = ["Policy", "Run", "build_learner", "load_policy", "train", "train_seeds"]


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
            _warn(
                f"the data names the environment '{target.metadata.env_id}', which cannot be "
                "built here: training without evaluation; pass --eval-env ENV_ID to evaluate"
            )
    elif not envs:  # said once, at the start, rather than a silent "final score n/a"
        _warn(
            f"'{target.metadata.name}' names no environment and no --eval-env was given: "
            "training without evaluation (no scores); pass --eval-env ENV_ID (e.g. Hopper-v5)"
        )
    resolved = [check_env_id(e) for e in envs]
    import gymnasium as gym

    for env_id in resolved:
        space = gym.spec(env_id)
        env = gym.make(space)
        try:
            obs_dim = int(np.prod(env.observation_space.shape))
            act_dim = int(np.prod(env.action_space.shape))
            space = env.action_space
        finally:
            env.close()
        if (obs_dim, act_dim) != (target.obs_dim, target.act_dim):
            raise ConfigError(
                f"evaluation env {env_id} has obs dim {obs_dim} / action dim {act_dim} but the dataset has "
                f"{target.obs_dim} / {target.act_dim}"
            )
        _check_action_range(target, env_id, space)
    return resolved


def _warn(message: str) -> None:
    print(f"shiftrl: warning: {message}", file=sys.stderr)


def _check_action_range(target: TransitionDataset, env_id: str, space: Any) -> None:
    """Warn when the data's action range is much wider than the evaluation env accepts: the
    policy learns in the data's range and the env clips what lies outside its own."""
    low, high = target.metadata.action_low, target.metadata.action_high
    env_low, env_high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None or env_low is None or env_high is None:
        return
    lo, hi = np.asarray(low, float).reshape(-1), np.asarray(high, float).reshape(-1)
    e_lo, e_hi = np.asarray(env_low, float).reshape(-1), np.asarray(env_high, float).reshape(-1)
    if lo.shape != e_lo.shape or not (np.isfinite(e_lo).all() and np.isfinite(e_hi).all()):
        return
    slack = 0.1 * (e_hi - e_lo)
    wide = np.flatnonzero((lo < e_lo - slack) | (hi > e_hi + slack))
    if wide.size:
        i = int(wide[0])
        _warn(
            f"the dataset's actions span [{lo[i]:.3g}, {hi[i]:.3g}] in dim {i} but {env_id} accepts "
            f"[{e_lo[i]:.3g}, {e_hi[i]:.3g}]; actions outside it are clipped by the environment"
        )


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


def pretrain_addons(
    learner,
    addons,
    sampler,
    carry,
    data,
    progress: ProgressArg = True,
    axes: Any = None,
    start: int = 0,
    stop: StopRequest | None = None,
    save: Callable[[Any, int], None] | None = None,
):
    """Each add-on's pretraining phase (DARA's classifiers, SPOT's VAE, SSAR's IQL critic),
    in compiled chunks of a few seconds under a progress bar (`axes`: the carry holds
    stacked seeds), from pretraining step `start`. On a `stop` request, `save(carry, done)`
    is called after the chunk in flight, then KeyboardInterrupt is raised."""
    steps = max((ad.pretrain_steps for ad in addons), default=0)
    if start >= steps:
        return carry
    chunk = make_pretrain_chunk(learner, addons, sampler, axes)
    pacer = ChunkPacer()
    names = "+".join(ad.name for ad in addons if ad.pretrain_steps)
    with Progress(f"pretrain {names}", steps, start=start, progress=progress) as bar:
        done = start
        while done < steps:
            n = pacer.next(steps - done)
            t0 = time.perf_counter()
            new, _ = chunk(carry, data, n, done)
            jax.block_until_ready(new)  # the bar counts steps done, not steps dispatched
            pacer.done(n, time.perf_counter() - t0)
            carry, done = new, done + n
            bar.advance(n)
            if stop is not None and stop.requested and done < steps:
                if save is not None:
                    save(carry, done)
                stop.check()
    return carry


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------
@dataclass
class Setup:
    """What the seeds of one run configuration share: learner, add-ons, data, evaluation."""

    learner: Learner
    addons: tuple
    datasets: list[TransitionDataset]
    checksums: list[str]
    eval_envs: list[str]
    references: dict[str, list[float]]
    sampler: SamplerSpec


def prepare(
    config: RunConfig, target: TransitionDataset, sources: Sequence[TransitionDataset]
) -> Setup:
    """Check a run configuration against its data and build what training needs."""
    validate_config(config)
    if config.source_mixing not in MIXINGS:
        raise ConfigError(
            f"source_mixing must be one of {', '.join(MIXINGS)}, got '{config.source_mixing}'"
        )
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
        counts=batch_counts(
            config.batch_size,
            [len(d) for d in datasets],
            config.source_fraction,
            config.source_mixing,
        ),
        domains=(TARGET, *([SOURCE] * len(sources))),
    )
    for d, rows in zip(datasets, sampler.counts, strict=True):
        if 0 < len(d) < rows:
            _warn(
                f"'{d.metadata.name}' has {len(d)} transitions but every batch draws {rows} rows "
                "from it (with replacement); the learner will fit those few transitions"
            )
    checksums = [d.checksum() for d in datasets]
    return Setup(learner, addons, datasets, checksums, eval_envs, references, sampler)


def run_name(config: RunConfig, target: TransitionDataset) -> str:
    """What makes a run differ from its neighbours, as a folder name: learner and add-ons, the
    target data (and its subset), the sources, e.g.
    `iql+dara-hopper-base_medium-v0-1T-from-hopper-mass-2.0_medium-v0`."""
    learner = "+".join([config.algo, *(a["name"] for a in config.addons)])
    name = f"{learner}-{target.metadata.name}"
    if config.target_fraction is not None:
        name += f"-{config.target_fraction:g}T"
    if config.target_count is not None:
        name += f"-{config.target_count}T"
    if config.sources:
        name += "-from-" + "+".join(Path(s).stem if Path(s).suffix else s for s in config.sources)
    return name.replace("/", "_")


def default_run_dir(config: RunConfig, target: TransitionDataset) -> Path:
    """runs/<run_name>-s<seed>: runs that differ in learner, add-ons or data never collide."""
    return Path("runs") / f"{run_name(config, target)}-s{config.seed}"


def train(
    config: RunConfig,
    target: TransitionDataset,
    sources: Sequence[TransitionDataset] = (),
    out: str | Path | None = None,
    resume: bool = False,
    progress: ProgressArg = True,
    callbacks: Sequence[Callback] = (),
) -> Run:
    setup = prepare(config, target, sources)
    run_dir = Path(out) if out is not None else default_run_dir(config, target)
    return _train_members(setup, [config], [run_dir], resume, progress, callbacks)[0]


def train_seeds(
    config: RunConfig,
    target: TransitionDataset,
    sources: Sequence[TransitionDataset] = (),
    seeds: Sequence[int] = (0, 1, 2),
    out: str | Path | None = None,
    resume: bool = False,
    progress: ProgressArg = True,
    callbacks: Sequence[Callback] = (),
) -> list[Run]:
    """Several seeds of `config` as one vmapped program, into `out/seed<k>` run folders.

    The seeds' carries are stacked and one compiled scan advances them all (`jax.vmap`
    over the train chunk), so on an accelerator N seeds take about one run's wall-clock.
    Each seed's folder is the same as `train(config with that seed)` writes; seed k's
    result equals that run's up to floating-point reassociation (checked in the tests).
    Callbacks get each seed's evaluation rows with a "seed" key.
    The seeds must share their data: a target subset drawn per seed needs separate runs.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct and at least one, got {seeds}")
    if config.target_fraction is not None or config.target_count is not None:
        raise ConfigError(
            "each seed draws its own target subset (target_fraction / target_count), so the "
            "seeds do not share data; train them as separate runs"
        )
    setup = prepare(config, target, sources)
    # default: runs/<run_name>/seed<k>, beside train's runs/<run_name>-s<k>
    base = (
        Path(out)
        if out is not None
        else default_run_dir(config, target).parent / run_name(config, target)
    )
    configs = [dataclasses.replace(config, seed=s) for s in seeds]
    dirs = [base / f"seed{s}" for s in seeds]
    return _train_members(setup, configs, dirs, resume, progress, callbacks, stacked=True)


def _train_members(
    setup: Setup,
    configs: list[RunConfig],
    run_dirs: list[Path],
    resume: bool,
    progress: ProgressArg,
    callbacks: Sequence[Callback],
    stacked: bool = False,
) -> list[Run]:
    """Train one run (stacked=False) or several seeds stacked on a leading axis."""
    folders: list[rundir.OpenRun] = []
    try:
        for d in run_dirs:
            folders.append(rundir.open_run(d, resume, setup.checksums))
        return _train_open(setup, configs, folders, progress, callbacks, stacked)
    finally:
        for f in folders:
            f.lock.release()


def _train_open(
    setup: Setup,
    configs: list[RunConfig],
    folders: list[rundir.OpenRun],
    progress: ProgressArg,
    callbacks: Sequence[Callback],
    stacked: bool,
) -> list[Run]:
    learner, addons, sampler = setup.learner, setup.addons, setup.sampler
    run_dirs = [f.path for f in folders]
    stop = StopRequest()  # entered once config.json is written (below)
    fresh = [f.pre is None for f in folders]
    if any(fresh) and not all(fresh):
        raise ConfigError(
            "some seeds' run folders have checkpoints and others not; resume them one at a time"
        )
    try:
        pre = folders[0].pre or fit_preprocessor(setup.datasets, configs[0].learner)
        addons = tuple(ad.prepare(setup.datasets, pre, progress) for ad in addons)
        data = to_device(annotated_arrays(setup.datasets, pre, addons))
        carries = [
            calibrate_carry(addons, init_carry(learner, addons, learner.spec, c.seed), pre)
            for c in configs
        ]
        axes = choose_seed_axes(learner, addons, sampler, carries, data) if stacked else None
        train_chunk = make_train_chunk(learner, addons, sampler, axes, guard=True)
        loggers = [
            RunLogger(d, c.tensorboard, c.wandb_project, c.to_json())
            for c, d in zip(configs, run_dirs, strict=True)
        ]
        # from here on a first Ctrl-C stops at a chunk boundary with a checkpoint
        stop.__enter__()
        start, pretrained, windows = 0, 0, None
        if all(fresh):
            carry = stack_carries(carries, axes) if stacked else carries[0]
            for c, d in zip(configs, run_dirs, strict=True):  # first: pretraining may resume
                _write_meta(d, c, pre, setup)
        else:
            loaded = [checkpoint.load_latest(d, t) for d, t in zip(run_dirs, carries, strict=True)]
            steps = sorted({s for s, _ in loaded})
            if len(steps) > 1:
                raise ConfigError(
                    f"the seeds' run folders stopped at different steps ({steps}); "
                    "resume them one at a time"
                )
            start = steps[0]
            carry = stack_carries([c for _, c in loaded], axes) if stacked else loaded[0][1]
            extras = [checkpoint.load_extra(checkpoint.latest(d)) for d in run_dirs]
            # an interrupted pretraining phase records how far it got; else it was complete
            pretrained = extras[0].get("pretrain_done", None)
            windows = [MetricWindow.from_json(e.get("window")) for e in extras]
            for lg in loggers:
                lg.truncate_after(start)
        members = list(zip(configs, run_dirs, loggers, strict=True))
        loop = _Loop(
            configs[0],
            learner,
            train_chunk,
            data,
            pre,
            setup.eval_envs,
            setup.references,
            members,
            axes,
        )
        if pretrained is not None:
            carry = pretrain_addons(
                learner,
                addons,
                sampler,
                carry,
                data,
                progress,
                axes,
                start=pretrained,
                stop=stop,
                save=loop.save_pretraining,
            )
        loop.run(carry, start, progress, callbacks, stop, windows)
    except BaseException:
        # a fresh run that never reached its first checkpoint leaves nothing of shiftrl's
        # behind (the user's own files, and the marker beside them, stay)
        for f, new in zip(folders, fresh, strict=True):
            if new and checkpoint.latest(f.path) is None:
                rundir.remove_own_files(f.path, remove_folder=f.created)
        raise
    finally:
        stop.__exit__(None, None, None)
    runs = []
    for c, d, lg in members:
        lg.close()
        rows = lg.rows()
        title = f"{c.algo} on {setup.datasets[0].metadata.name}"
        if any(k.startswith("eval/") for r in rows for k in r):  # no evaluation: no curve
            plot_learning_curve(rows, d / "learning_curve.png", title)
        runs.append(Run(d, c, rows, load_policy(d, allow_nonfinite=not c.divergence_guard)))
    return runs


def _write_meta(run_dir: Path, config: RunConfig, pre: Preprocessor, setup: Setup) -> None:
    target = setup.datasets[0]
    meta = {
        "shiftrl_version": __version__,
        "config": config.to_json(),
        "preprocessor": pre.to_json(),
        "obs_dim": target.obs_dim,
        "act_dim": target.act_dim,
        "datasets": [d.summary() for d in setup.datasets],
        "checksums": setup.checksums,
        "eval_envs": setup.eval_envs,
        "references": setup.references,
        "batch_counts": list(setup.sampler.counts),
    }
    (run_dir / "config.json").write_text(json.dumps(meta, indent=2))


@dataclass
class _Loop:
    """What the host loop needs besides the carry: chunks, evaluations, checkpoints.
    `members` are (config, run folder, logger) per seed; `axes` (`seed_axes`): the carry
    holds them all stacked."""

    config: RunConfig
    learner: Learner
    train_chunk: Any
    data: Any
    pre: Preprocessor
    eval_envs: list[str]
    references: dict[str, list[float]]
    members: list[tuple[RunConfig, Path, RunLogger]]
    axes: Any = None

    @property
    def stacked(self) -> bool:
        return self.axes is not None

    def __post_init__(self):
        # jitted once per run; the learner state is an argument, never captured
        self.act = jax.jit(self.learner.act)
        self._warned: set[int] = set()

    def member_carry(self, carry, i: int):
        return unstack_carry(carry, i, self.axes) if self.stacked else carry

    def run(
        self,
        carry,
        start: int,
        progress: ProgressArg,
        callbacks,
        stop: StopRequest,
        windows: list[MetricWindow] | None = None,
    ) -> None:
        """Train from `start` to `config.steps` in compiled chunks of a few seconds
        (`ChunkPacer`) that end exactly on evaluation and loss-log steps; `windows`: the
        training-metric sums an interrupted run saved since its last evaluation."""
        config = self.config
        windows = windows or [MetricWindow() for _ in self.members]
        since_log = [MetricWindow() for _ in self.members]
        pacer = ChunkPacer()
        title = config.algo + (f" x{len(self.members)} seeds" if self.stacked else "")
        with Progress(
            title, config.steps, start=start, progress=progress, rate_unit="updates/s"
        ) as bar:
            step, t0 = start, time.perf_counter()
            if start and self.evaluation_missing(start):  # an interrupt skipped it
                self.evaluate_and_save(carry, step, windows, callbacks, bar, t0)
                windows = [MetricWindow() for _ in self.members]
            while step < config.steps:
                limit = next_boundary(step, config.steps, config.eval_every, config.log_every)
                length = pacer.next(limit - step)
                t_chunk = time.perf_counter()
                carry, metrics, health = self.train_chunk(carry, self.data, length)
                self.check_health(health, step)
                metrics = jax.device_get(metrics)  # waits: the bar counts steps done
                pacer.done(length, time.perf_counter() - t_chunk)
                step += length
                for i in range(len(self.members)):
                    own = (
                        {k: np.asarray(v)[i] for k, v in metrics.items()}
                        if self.stacked
                        else metrics
                    )
                    windows[i].add(own, length)
                    since_log[i].add(own, length)
                bar.advance(length)
                at_eval = step % config.eval_every == 0 or step == config.steps
                if step % config.log_every == 0 or at_eval:  # training losses to TB / W&B
                    for (_, _, logger), w in zip(self.members, since_log, strict=True):
                        logger.log_scalars(step, w.means())
                    since_log = [MetricWindow() for _ in self.members]
                if stop.requested:  # before the evaluation: it would delay the stop
                    self.save_interrupted(carry, step, windows)
                    stop.check()
                if at_eval:
                    self.evaluate_and_save(carry, step, windows, callbacks, bar, t0)
                    windows = [MetricWindow() for _ in self.members]

    def evaluation_missing(self, step: int) -> bool:
        """`step` is an evaluation step whose row is not in the log (an interrupt stopped
        the run right before evaluating)."""
        config = self.config
        if step % config.eval_every and step != config.steps:
            return False
        return any(
            not any(r["step"] == step and not r.get("diverged") for r in logger.rows())
            for _, _, logger in self.members
        )

    def evaluate_and_save(self, carry, step: int, windows, callbacks, bar, t0: float) -> None:
        """Each member's evaluation row (with its training-metric means) and checkpoint."""
        config = self.config
        rows = []
        for i, (cfg, run_dir, logger) in enumerate(self.members):
            own = self.member_carry(carry, i)
            means = windows[i].means()
            row = {"step": step, **means}
            finite = config.divergence_guard or checkpoint.is_finite(own)
            if finite:
                row.update(self.evaluate(own.learner, cfg.seed))
            else:  # guard off: a non-finite policy has no score to measure
                row["nonfinite"] = True
            row["elapsed_s"] = time.perf_counter() - t0
            logger.log(row, sink_keys=[k for k in row if k not in means])
            checkpoint.save(
                run_dir,
                step,
                own,
                cfg.keep_checkpoints,
                finite=finite,
                score=row.get("normalized_score"),
            )
            rows.append(row)
            for cb in callbacks:
                cb({**row, "seed": cfg.seed} if self.stacked else row)
        mean = _mean_row(rows)
        if mean["normalized_score"] is not None:
            bar.note(f"score {mean['normalized_score']:.1f} at step {step:,}")
        elif mean["return"] is not None:
            bar.note(f"return {mean['return']:.1f} at step {step:,}")

    def save_interrupted(self, carry, step: int, windows: list[MetricWindow]) -> None:
        """Ctrl-C: each member's checkpoint of `step` (a chunk boundary), with the metric
        sums since its last evaluation, so `--resume` continues exactly from here."""
        for i, (cfg, run_dir, _) in enumerate(self.members):
            own = self.member_carry(carry, i)
            checkpoint.save(
                run_dir,
                step,
                own,
                cfg.keep_checkpoints,
                finite=checkpoint.is_finite(own),
                extra={"window": windows[i].to_json()},
            )
        self._say_saved(f"training step {step:,}")

    def save_pretraining(self, carry, done: int) -> None:
        """Ctrl-C during add-on pretraining: a step-0 checkpoint recording how many
        pretraining steps are done, so `--resume` finishes the phase instead of redoing it."""
        for i, (cfg, run_dir, _) in enumerate(self.members):
            own = self.member_carry(carry, i)
            checkpoint.save(
                run_dir, 0, own, cfg.keep_checkpoints, extra={"pretrain_done": int(done)}
            )
        self._say_saved(f"pretraining step {done:,}")

    def _say_saved(self, where: str) -> None:
        dirs = [d for _, d, _ in self.members]
        if self.stacked:
            seeds = ",".join(str(c.seed) for c, _, _ in self.members)
            how = f"shiftrl train --resume --out {dirs[0].parent} --seeds {seeds}"
        else:
            how = f"shiftrl train --resume --out {dirs[0]}"
        print(
            f"shiftrl: saved a checkpoint at {where}; continue with `{how}`",
            file=sys.stderr,
            flush=True,
        )

    def check_health(self, health: dict, chunk_start: int) -> None:
        """The divergence guard's verdict on one chunk: a member whose losses or parameters
        went non-finite stops the run with one line (or, guard off, one warning), its
        metrics marked; the checkpoints on disk are all finite and stay."""
        finite = np.atleast_1d(np.asarray(health["finite"]))
        if finite.all():
            return
        for i in np.flatnonzero(~finite):
            cfg, run_dir, logger = self.members[i]
            pick = (lambda x, i=i: np.asarray(x)[i]) if self.stacked else np.asarray
            at_step = chunk_start + int(pick(health["first_bad"])) + 1
            culprit = _culprit({k: float(pick(v)) for k, v in health["at_bad"].items()})
            seed = f" (seed {cfg.seed})" if self.stacked else ""
            what = f"training diverged at step {at_step}{seed}: {culprit}"
            if not self.config.divergence_guard:
                if i not in self._warned:
                    self._warned.add(i)
                    print(
                        f"shiftrl: warning: {what}; divergence_guard is off, training on",
                        file=sys.stderr,
                    )
                continue
            losses = {k: v for k, v in health["at_bad"].items() if "loss" in k}
            logger.log(
                {
                    "step": at_step,
                    "diverged": True,
                    "diverged_reason": culprit,
                    **{k: float(pick(v)) for k, v in losses.items()},
                }
            )
            last = checkpoint.latest(run_dir)
            kept = (
                f"the last finite checkpoint ({last.name}) is kept"
                if last
                else ("no checkpoint had been written yet")
            )
            raise DivergenceError(
                f"{what}; {kept}. Lower the learning rates, or --set divergence_guard=false "
                "to train on regardless"
            )

    def evaluate(self, learner_state, seed: int) -> dict[str, Any]:
        """Per-env returns and normalized scores, plus their averages over the eval envs."""
        if not self.eval_envs:
            return {}

        def policy(obs):
            return np.asarray(self.act(learner_state, obs))

        start = eval_seed(seed)  # the same start states at every evaluation (and online)
        row, scores, returns = {}, [], []
        for env_id in self.eval_envs:
            ref = self.references.get(env_id)
            res = evaluate(
                policy,
                self.pre,
                env_id,
                self.config.eval_episodes,
                start,
                tuple(ref) if ref else None,
            )
            row.update({f"eval/{env_id}/{k}": v for k, v in res.to_json().items() if k != "env"})
            returns.append(res.mean_return)
            if not np.isnan(res.normalized):
                scores.append(res.normalized)
        row["normalized_score"] = float(np.mean(scores)) if scores else None
        row["return"] = float(np.mean(returns))
        return row


def _culprit(losses: dict[str, float]) -> str:
    """Which loss gave out, for the divergence line: the non-finite ones, else (the update
    itself overflowed the parameters) the largest loss of that step."""
    # an inf names the culprit best; a NaN may also mark a skipped sub-step (TD3's actor)
    bad = [k for k, v in losses.items() if np.isinf(v)]
    bad = bad or [k for k, v in losses.items() if np.isnan(v) and "loss" in k]
    if bad:
        return ", ".join(f"{k} = {losses[k]}" for k in bad[:3]) + " (non-finite)"
    finite = {k: v for k, v in losses.items() if np.isfinite(v) and "loss" in k}
    if finite:
        name = max(finite, key=lambda k: abs(finite[k]))
        return f"parameters became non-finite in the update after {name} = {finite[name]:.3g}"
    return "parameters became non-finite"


def _mean_row(rows: list[dict]) -> dict:
    """The seeds' mean score and return, for the progress bar."""
    out = {}
    for key in ("normalized_score", "return"):
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out
