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
from shiftrl.addons.base import AddOn
from shiftrl.core.errors import ConfigError, DataError
from shiftrl.core.interrupt import StopRequest
from shiftrl.core.progress import Progress, ProgressArg
from shiftrl.core.types import SOURCE, TARGET
from shiftrl.data.dataset import TransitionDataset
from shiftrl.data.preprocess import Preprocessor, apply, fit_preprocessor
from shiftrl.envs.reference import reference_scores
from shiftrl.learners.base import Learner
from shiftrl.training import checkpoint, rundir
from shiftrl.training.config import RunConfig, validate_config
from shiftrl.training.evaluation import check_env_id
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
    stack_carries,
    to_device,
)
from shiftrl.training.policy import (  # re-exported: the run-level API lives here
    Policy,
    Run,
    build_learner,
    load_policy,
    plot_learning_curve,
)
from shiftrl.training.runloop import RunLoop

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


PRETRAIN_SAVE_EVERY_S = 300.0
"""How often a long add-on pretraining phase writes its progress to the run folder."""


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
    save: Callable[[Any, int, bool], None] | None = None,
):
    """Each add-on's pretraining phase (DARA's classifiers, SPOT's VAE, SSAR's IQL critic),
    in compiled chunks of a few seconds under a progress bar (`axes`: the carry holds
    stacked seeds), from pretraining step `start`.

    `save(carry, done, interrupted)` writes the phase's progress: every
    `PRETRAIN_SAVE_EVERY_S` seconds and once the phase is complete (a run killed later, even by SIGKILL, resumes
    without redoing minutes to hours of pretraining), and on a `stop` request after the
    chunk in flight, which then raises KeyboardInterrupt."""
    steps = max((ad.pretrain_steps for ad in addons), default=0)
    if start >= steps:
        return carry
    chunk = make_pretrain_chunk(learner, addons, sampler, axes)
    pacer = ChunkPacer()
    names = "+".join(ad.name for ad in addons if ad.pretrain_steps)
    with Progress(f"pretrain {names}", steps, start=start, progress=progress) as bar:
        done, saved_at = start, time.monotonic()
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
                    save(carry, done, True)
                stop.check()
            if save is not None and (
                done == steps or time.monotonic() - saved_at >= PRETRAIN_SAVE_EVERY_S
            ):
                save(carry, done, False)
                saved_at = time.monotonic()
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
        for d in run_dirs:  # a resumed run keeps the record of what its first start trained
            if not (d / rundir.MODELS_FILE).exists():
                _write_models(d, addons)
        members = list(zip(configs, run_dirs, loggers, strict=True))
        loop = RunLoop(
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


def _write_models(run_dir: Path, addons: Sequence[AddOn]) -> None:
    """What the add-ons' `prepare` trained or loaded (dynamics ensemble, dynamics reward):
    settings, cost, cache key, reused or not; nothing when no add-on prepares a model."""
    records = {a.name: r for a in addons if (r := a.prepared_records())}
    if records:
        (run_dir / rundir.MODELS_FILE).write_text(json.dumps(records, indent=2, default=float))


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
