"""A context learner's online run from names and settings: what `shiftrl train-online` and
`shiftrl.train_online` call (`online_context.py` holds the loop).

    rows = train_online("sac-context", "pendulum-randomized-gravity", "runs/ctx",
                        steps=50_000, addons=["srpo"], overrides={"srpo.lam": 0.3})

Settings (`overrides`, the CLI's `--set key=value`): the learner's hyperparameters
(`ContextSACConfig`: window, hidden, context_hidden, ...), the online run's (`OnlineConfig`:
num_envs, start_steps, steps_per_iter, utd, batch_size, buffer_size, eval_every,
eval_episodes, checkpoint_every) and add-on settings (`srpo.lam`). A run folder records
them in config.json; `resume=True` rebuilds the run from it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shiftrl.core.errors import ConfigError
from shiftrl.core.progress import ProgressArg
from shiftrl.learners import ONLINE_LEARNERS
from shiftrl.learners.base import LearnerSpec
from shiftrl.training.online import OnlineConfig

ONLINE_KEYS = {f.name for f in dataclasses.fields(OnlineConfig)} - {
    "env_id",
    "total_steps",
    "seed",
    "snapshot_every",
    "learning_starts",
    "offline_fraction",
}
DEFAULT_BUFFER = 1_000_000
ONLINE_ADDONS = ("srpo",)
"""Add-ons that work from the online batch alone (the others need datasets: DARA's source
data, MOPO / MOBILE's dynamics models trained on data, SPOT / SSAR's offline phases)."""


def get_online_learner(name: str) -> type:
    key = name.lower().replace("_", "-")
    if key not in ONLINE_LEARNERS:
        raise ConfigError(
            f"unknown online algorithm '{name}'; available: {', '.join(ONLINE_LEARNERS)}"
        )
    return ONLINE_LEARNERS[key]


def env_dims(env_id: str) -> tuple[int, int]:
    import gymnasium as gym
    import numpy as np

    from shiftrl.training.evaluation import check_env_id

    env = gym.make(check_env_id(env_id))
    try:
        return int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    finally:
        env.close()


def build_run(
    algo: str,
    env: str,
    *,
    steps: int,
    seed: int = 0,
    preset: str | None = None,
    addons: Sequence[Any] = (),
    overrides: dict[str, Any] | Sequence[str] | None = None,
):
    """(learner, OnlineConfig, add-ons) of a fresh run; unknown settings raise ConfigError."""
    from shiftrl.addons import build_addons
    from shiftrl.training.config import _set_addon, _split, addon_record, coerce

    cls = get_online_learner(algo)
    if preset is not None and preset not in cls.PRESETS:
        raise ConfigError(
            f"unknown preset '{preset}' for {cls.name}; available: {', '.join(cls.PRESETS)}"
        )
    if steps <= 0:
        raise ConfigError("steps must be positive")
    learner_config = cls.preset(preset)
    online = OnlineConfig(
        env_id=env, total_steps=steps, seed=seed, buffer_size=min(steps, DEFAULT_BUFFER)
    )
    records = [addon_record(a) for a in addons]
    for record in records:
        if record.get("name") not in ONLINE_ADDONS:
            raise ConfigError(
                f"add-on '{record.get('name')}' does not run in an online context run (it "
                f"needs offline data); available here: {', '.join(ONLINE_ADDONS)}"
            )
    items = (
        (overrides or {}).items() if isinstance(overrides, dict) else map(_split, overrides or ())
    )
    learner_kw, online_kw = {}, {}
    for key, raw in items:
        if "." in key:
            _set_addon(records, key, raw)
        elif key in cls.config_fields():
            current = getattr(learner_config, key)
            learner_kw[key] = coerce(raw, current, key) if isinstance(raw, str) else raw
        elif key in ONLINE_KEYS:
            current = getattr(online, key)
            online_kw[key] = coerce(raw, current, key) if isinstance(raw, str) else raw
        else:
            valid = sorted(set(cls.config_fields()) | ONLINE_KEYS)
            raise ConfigError(
                f"unknown setting '{key}' for {cls.name}; valid keys: {', '.join(valid)}"
            )
    online = dataclasses.replace(online, **online_kw)
    _check_online(online)
    obs_dim, act_dim = env_dims(env)
    learner = cls(dataclasses.replace(learner_config, **learner_kw), LearnerSpec(obs_dim, act_dim))
    return learner, online, build_addons(records, learner)


def _check_online(c: OnlineConfig) -> None:
    positive = (
        "num_envs",
        "steps_per_iter",
        "batch_size",
        "buffer_size",
        "eval_every",
        "eval_episodes",
        "checkpoint_every",
    )
    for key in positive:
        if getattr(c, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {getattr(c, key)}")
    if c.utd <= 0 or c.start_steps < 0:
        raise ConfigError("utd must be positive and start_steps non-negative")


def rebuild_run(out: Path):
    """(learner, OnlineConfig, add-ons, eval envs) recorded in a run folder's config.json."""
    from shiftrl.addons import build_addons

    path = Path(out) / "config.json"
    if not path.exists():
        raise ConfigError(f"--resume needs --out pointing at an existing online run folder ({out})")
    meta = json.loads(path.read_text())
    if meta.get("kind") != "online-context":
        raise ConfigError(f"{out} is not a context online run (written by `shiftrl train-online`)")
    cls = get_online_learner(meta["algo"])
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["learner"].items()}
    learner = cls(cls.Config(**fields), LearnerSpec(meta["obs_dim"], meta["act_dim"]))
    online = OnlineConfig(**meta["online_config"])
    return learner, online, build_addons(meta["addons"], learner), tuple(meta["eval_envs"])


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
    progress: ProgressArg = True,
    callbacks: Sequence[Callable[[dict], None]] = (),
) -> list[dict]:
    """Train a context learner online on `env` (e.g. a dynamics-randomized env) into `out`;
    returns the logged rows (`step`, `return` / `normalized_score`: mean over the
    dynamics, `eval/<env>/...` per dynamics). `resume=True` continues the run in `out` from
    its last checkpoint with its recorded settings (the other arguments are ignored)."""
    from shiftrl.training.online_context import train_context_online

    if resume and (Path(out) / "config.json").exists():
        learner, online, built, recorded_envs = rebuild_run(Path(out))
        eval_envs = recorded_envs
    else:
        learner, online, built = build_run(
            algo, env, steps=steps, seed=seed, preset=preset, addons=addons, overrides=overrides
        )
    return train_context_online(
        learner,
        online,
        out,
        addons=built,
        eval_envs=eval_envs,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
        extra_meta={"preset": preset},
    )
