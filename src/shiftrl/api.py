"""The small public API: load data, train, load a policy, evaluate.

import shiftrl
ds = shiftrl.load_dataset("hopper-medium.hdf5")
run = shiftrl.train("td3bc", ds, steps=100_000, eval_envs=["Hopper-v5"], out="runs/td3bc")
print(run.score("final"), run.score("best"))
policy = shiftrl.load_policy("runs/td3bc")
shiftrl.evaluate(policy, "Hopper-v5", episodes=10).normalized
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shiftrl.data.dataset import TransitionDataset
from shiftrl.learners import LEARNERS


def load_dataset(id_or_path: str | Path) -> TransitionDataset:
    """A dataset from an .npz / D4RL-style .hdf5 file, a local Minari dataset id, or a
    built-in ID such as `hopper-mass-2.0/medium-v0` (`shiftrl data list`), which is made
    on first use (with a progress bar) and then loaded from $SHIFTRL_DATA."""
    from shiftrl.data.io import load_dataset as _load

    return _load(str(id_or_path))


def _as_dataset(d: TransitionDataset | str | Path) -> TransitionDataset:
    return d if isinstance(d, TransitionDataset) else load_dataset(d)


def train(
    algo: str,
    dataset: TransitionDataset | str | Path,
    *,
    sources: Sequence[TransitionDataset | str | Path] = (),
    steps: int = 1_000_000,
    seed: int = 0,
    eval_envs: Sequence[str] = (),
    out: str | Path | None = None,
    preset: str | None = None,
    addons: Sequence[Any] = (),
    overrides: dict[str, Any] | Sequence[str] | None = None,
    resume: bool = False,
    progress: bool | str = True,
    callbacks: Sequence = (),
    **run_settings: Any,
):
    """Train `algo` offline on `dataset` (plus `sources` from other dynamics).

    `addons` are shift add-ons by name ("dara"), as settings dicts, or objects
    (`shiftrl.addons.DARA(eta=0.2)`). `overrides` sets learner hyperparameters, run settings
    or add-on settings ("dara.eta") by name, e.g. {"alpha": 2.5, "batch_size": 128};
    `run_settings` accepts the run keys directly (target_fraction=0.1, eval_every=...).
    `progress`: True, a bar on a terminal and a plain line every 30 s elsewhere; "plain",
    the lines always; False, silent. Ctrl-C stops within seconds and keeps a checkpoint
    that `resume=True` continues.
    """
    from shiftrl.training.run import train as _train

    config, target, source_sets = _run_config(
        algo, dataset, sources, steps, seed, eval_envs, preset, addons, overrides, run_settings
    )
    return _train(
        config, target, source_sets, out=out, resume=resume, progress=progress, callbacks=callbacks
    )


def train_seeds(
    algo: str,
    dataset: TransitionDataset | str | Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool | str = True,
    callbacks: Sequence = (),
    **train_args: Any,
):
    """`train` for several seeds at once, vmapped into one compiled program (fast on an
    accelerator): one run folder per seed, `out/seed<k>`; returns the runs in seed order.
    `train_args` are `train`'s (sources, steps, eval_envs, preset, addons, overrides, run
    settings); callbacks get rows with a "seed" key."""
    import inspect

    from shiftrl.training.run import train_seeds as _train_seeds

    seeds = list(seeds)
    # `train`'s own defaults for whatever the caller left out
    bound = inspect.signature(train).bind(
        algo, dataset, seed=seeds[0] if seeds else 0, **train_args
    )
    bound.apply_defaults()
    a = bound.arguments
    config, target, source_sets = _run_config(
        algo,
        dataset,
        a["sources"],
        a["steps"],
        a["seed"],
        a["eval_envs"],
        a["preset"],
        a["addons"],
        a["overrides"],
        a["run_settings"],
    )
    return _train_seeds(config, target, source_sets, seeds, out, resume, progress, callbacks)


def _run_config(
    algo, dataset, sources, steps, seed, eval_envs, preset, addons, overrides, run_settings
):
    """The RunConfig of `train`'s arguments, with the loaded target and source datasets."""
    from shiftrl.data.io import data_reference
    from shiftrl.training.config import apply_overrides, make_config

    target = _as_dataset(dataset)
    source_sets = [_as_dataset(s) for s in sources]
    config = make_config(
        algo,
        preset,
        dataset=data_reference(target),
        sources=tuple(data_reference(s) for s in source_sets),
        steps=steps,
        seed=seed,
        eval_envs=tuple(eval_envs),
        addons=tuple(addons),
    )
    merged: dict[str, Any] = dict(run_settings)
    if isinstance(overrides, dict):
        merged.update(overrides)
        config = apply_overrides(config, merged)
    else:
        config = apply_overrides(config, merged)
        config = apply_overrides(config, list(overrides or []))
    return config, target, source_sets


def train_online(
    algo: str,
    env: str,
    out: str | Path,
    *,
    steps: int = 1_000_000,
    seed: int = 0,
    preset: str | None = None,
    addons: Sequence[Any] = (),
    overrides: dict[str, Any] | Sequence[str] | None = None,
    eval_envs: Sequence[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence = (),
) -> list[dict]:
    """Train an online context learner ("sac-context") on `env`, e.g. a dynamics-randomized
    env ("hopper-randomized-mass"), with add-ons ("srpo"); returns the logged rows, each
    with the mean over the dynamics (`return`, `normalized_score`) and per dynamics
    (`eval/<env>/...`). `overrides`: learner, online-run ("num_envs", "eval_every") and
    add-on ("srpo.lam") settings. `resume=True` continues the run in `out`."""
    from shiftrl.training.context_run import train_online as _train_online

    return _train_online(
        algo,
        env,
        out,
        steps=steps,
        seed=seed,
        preset=preset,
        addons=addons,
        overrides=overrides,
        eval_envs=eval_envs,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
    )


def load_policy(run_dir: str | Path, step: int | str | None = None, allow_nonfinite: bool = False):
    """The policy of a run folder: latest checkpoint (`step` None or "latest"), the best
    evaluation's ("best") or a given step; `policy.step` says which. A diverged, non-finite
    checkpoint is refused unless `allow_nonfinite`."""
    from shiftrl.training.run import load_policy as _load

    return _load(run_dir, step, allow_nonfinite)


def evaluate(policy_or_run: Any, env_id: str, episodes: int = 10, seed: int = 0):
    """Deterministic evaluation of a policy (or run folder) in a Gymnasium env."""
    policy = policy_or_run
    if isinstance(policy_or_run, str | Path):
        policy = load_policy(policy_or_run)
    elif hasattr(policy_or_run, "policy"):
        policy = policy_or_run.policy
    return policy.evaluate(env_id, episodes, seed)


def policy_transitions(
    run_dir: str | Path,
    env_id: str | None = None,
    transitions: int = 5_000,
    seed: int = 0,
) -> TransitionDataset:
    """The run's policy acting deterministically in `env_id` (default: the run's first
    evaluation env), as a dataset of `transitions` transitions: the states the policy
    itself visits, e.g. to test a dynamics model there (`evaluate_dynamics`), where a
    model-based learner's policy may exploit it."""
    from shiftrl.core.errors import ConfigError
    from shiftrl.data.collect import collect
    from shiftrl.data.dataset import DatasetMetadata
    from shiftrl.training.evaluation import check_env_shape
    from shiftrl.training.rundir import read_meta

    policy = load_policy(run_dir)
    if policy.learner.recurrent:
        raise ConfigError(
            f"{run_dir}: a recurrent (context) policy; its transitions need per-episode "
            "states, which collecting does not keep"
        )
    if env_id is None:
        envs = read_meta(Path(run_dir)).get("eval_envs") or []
        if not envs:
            raise ConfigError(f"{run_dir} names no evaluation env; give one (--env)")
        env_id = envs[0]
    check_env_shape(env_id, policy.learner.spec.obs_dim, policy.learner.spec.act_dim)
    meta = DatasetMetadata(name=f"policy of {run_dir} in {env_id}", env_id=env_id)
    return collect(env_id, lambda obs, rng: policy.act(obs), transitions, seed=seed, metadata=meta)


def algos() -> list[dict[str, Any]]:
    """Every learner with its description, paper and presets (the `shiftrl algos` table)."""
    out = []
    for name, cls in LEARNERS.items():
        out.append(
            {
                "name": name,
                "description": cls.description,
                "paper": cls.paper,
                "presets": list(cls.PRESETS),
                "defaults": dataclasses.asdict(cls.Config()),
            }
        )
    from shiftrl.recipes import RECIPES

    for r in RECIPES.values():
        out.append(
            {
                "name": r.name,
                "description": r.description,
                "paper": r.paper,
                "presets": [f"{r.learner}:{r.preset} + add-on {r.addon}"],
                "defaults": {},
            }
        )
    return out


def train_dynamics(
    dataset: TransitionDataset | str | Path,
    *,
    out: str | Path | None = None,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
    **settings: Any,
):
    """Train (or reuse from the cache) a dynamics ensemble on `dataset`; returns the model.

    `settings` are `shiftrl.dynamics.EnsembleConfig` fields (members=7, elites=5,
    hidden=(200,) * 4, max_epochs=None, ...). A model trained before on the same data with
    the same settings and seed is loaded from $SHIFTRL_DATA/dynamics instead of retrained.
    With `out`, the model is also saved there (`load_dynamics(out)` reads it back)."""
    from shiftrl.dynamics import EnsembleConfig, fit_dynamics, save_model

    config = EnsembleConfig().with_overrides(settings)
    model, record = fit_dynamics(
        _as_dataset(dataset), config, seed=seed, cache=cache, progress=progress
    )
    if out is not None:
        save_model(
            model, out, {k: v for k, v in record.items() if k not in ("reused", "cache_dir")}
        )
    return model


def load_dynamics(path: str | Path):
    """A dynamics ensemble saved by `train_dynamics(out=...)` or `shiftrl dynamics train`."""
    from shiftrl.dynamics import load_model

    return load_model(path)[0]


def evaluate_dynamics(
    model_or_path: Any, dataset: TransitionDataset | str | Path, horizon: int = 10, **kw: Any
) -> dict[str, Any]:
    """One-step MSE per member and k-step rollout error of a dynamics ensemble on a dataset
    (held-out rows when it is the data the model was trained on); see `dynamics eval`."""
    from shiftrl.dynamics import evaluate_model, load_model

    record = None
    model = model_or_path
    if isinstance(model_or_path, str | Path):
        model, record = load_model(model_or_path)
    return evaluate_model(model, _as_dataset(dataset), record, horizon=horizon, **kw)


def train_dynamics_reward(
    dataset: TransitionDataset | str | Path,
    *,
    out: str | Path | None = None,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
    **settings: Any,
):
    """Learn (or reuse from the cache) MOREC's dynamics reward r_D(s, a, s') on `dataset`.

    `settings` are `shiftrl.dynamics.reward.RewardConfig` fields (iterations=10_000,
    snapshot_every=250, ensemble_size=40, discriminator=(256, 256), ...). Cached under
    $SHIFTRL_DATA/dynamics-reward by data, settings and seed; with `out`, also saved there
    (`load_dynamics_reward(out)`, or `--set morec-mopo.reward_dir=OUT`)."""
    from shiftrl.dynamics.reward import RewardConfig, fit_dynamics_reward, save_reward

    config = RewardConfig.from_json({**RewardConfig().to_json(), **settings})
    model, record = fit_dynamics_reward(
        _as_dataset(dataset), config, seed=seed, cache=cache, progress=progress
    )
    if out is not None:
        save_reward(
            model, out, {k: v for k, v in record.items() if k not in ("reused", "cache_dir")}
        )
    return model


def load_dynamics_reward(path: str | Path):
    """A dynamics reward saved by `train_dynamics_reward(out=...)` or `shiftrl dynamics-reward
    train`; score transitions with `shiftrl.dynamics.reward.dynamics_reward(model, s, a, s')`."""
    from shiftrl.dynamics.reward import load_reward

    return load_reward(path)[0]
