"""Run configuration: frozen, JSON round-trippable, overridable with `key=value` strings."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from shiftrl.core.errors import ConfigError
from shiftrl.learners import get_learner


@dataclass(frozen=True)
class RunConfig:
    algo: str
    learner: Any
    """The learner's frozen config dataclass (its paper defaults, or a preset)."""
    preset: str | None = None
    dataset: str = ""
    """Target dataset ID or path, recorded so `--resume` can reload it."""
    sources: tuple[str, ...] = ()
    """Source-domain datasets (other dynamics) trained on together with the target."""
    addons: tuple[dict, ...] = ()
    """Add-on settings as recorded in config.json ({"name": ..., **settings})."""
    target_fraction: float | None = None
    """Keep this fraction of the target's episodes (DARA's 1T = 0.1), seeded by `seed`."""
    target_count: int | None = None
    """Or keep whole target episodes until this many transitions (ODRL's 5,000)."""
    steps: int = 1_000_000
    seed: int = 0
    batch_size: int = 256
    source_fraction: float = 0.5
    """Share of every batch drawn from the source datasets, when there are any."""
    source_mixing: str = "fraction"
    """'fraction': `source_fraction` of every batch from the sources (ODRL's 50/50); 'union':
    rows drawn from the union of target and sources, each dataset's share its size share
    (the DARA paper's D u D': ~9% target at 1T+10S); `source_fraction` is then unused."""
    eval_every: int = 5000
    eval_episodes: int = 10
    eval_envs: tuple[str, ...] = ()
    """Gymnasium ids to evaluate in; default: the dataset's own environment, if registered."""
    log_every: int = 1000
    """Training losses (means since the last log) go to TensorBoard / W&B every this many
    steps; compiled chunks (about 2 s each, `ChunkPacer`) end on its multiples."""
    keep_checkpoints: int = 2
    divergence_guard: bool = True
    """Stop the run at the first inf / NaN loss or parameter (False: train on, for research
    on divergence; non-finite checkpoints are then marked and the last finite one kept)."""
    tensorboard: bool = False
    wandb_project: str | None = None

    # -- JSON ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["learner"] = dataclasses.asdict(self.learner)
        d["sources"], d["eval_envs"], d["addons"] = (
            list(self.sources),
            list(self.eval_envs),
            list(self.addons),
        )
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunConfig:
        learner_cls = get_learner(d["algo"])
        learner_cfg = _build(learner_cls.Config, d["learner"])
        rest = {k: v for k, v in d.items() if k not in ("learner",)}
        for k in ("sources", "eval_envs", "addons"):
            rest[k] = tuple(rest.get(k, ()))
        return cls(learner=learner_cfg, **rest)


def _build(config_cls: type, values: dict[str, Any]) -> Any:
    kwargs = {}
    for f in dataclasses.fields(config_cls):
        if f.name in values:
            v = values[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return config_cls(**kwargs)


RUN_KEYS = {f.name for f in dataclasses.fields(RunConfig)} - {
    "algo",
    "learner",
    "preset",
    "addons",
    "dataset",
    "sources",
}


def addon_record(addon: Any) -> dict:
    """An add-on given as a name, a settings dict or an AddOn object, as config.json stores it."""
    from shiftrl.addons import ADDONS

    if isinstance(addon, str):
        if addon not in ADDONS:
            raise ConfigError(f"unknown add-on '{addon}'; available: {', '.join(sorted(ADDONS))}")
        return ADDONS[addon]().to_json()
    if isinstance(addon, dict):
        return dict(addon)
    return addon.to_json()


def make_config(algo: str, preset: str | None = None, **run_kwargs: Any) -> RunConfig:
    """A run config for a learner, or for a recipe (a learner + add-on, e.g. "spot")."""
    from shiftrl.recipes import get_recipe

    recipe = get_recipe(algo)
    if recipe is not None:
        algo, preset = recipe.learner, preset or recipe.preset
        own = recipe.addon_record(run_kwargs.get("dataset") or "")
        run_kwargs["addons"] = (own, *run_kwargs.get("addons", ()))
    learner_cls = get_learner(algo)
    if preset is not None and preset not in learner_cls.PRESETS:
        raise ConfigError(
            f"unknown preset '{preset}' for {learner_cls.name}; available: {', '.join(learner_cls.PRESETS)}"
        )
    if "addons" in run_kwargs:
        run_kwargs["addons"] = tuple(addon_record(a) for a in run_kwargs["addons"])
    learner = learner_cls.preset(preset)
    if recipe is not None:
        learner = dataclasses.replace(
            learner, **recipe.learner_settings(run_kwargs.get("dataset") or "")
        )
    return RunConfig(algo=learner_cls.name, learner=learner, preset=preset, **run_kwargs)


_NONE_WORDS = ("none", "null")


def coerce(value: str, default: Any, key: str, declared: Any = None) -> Any:
    """Parse a `--set` string into the type of the field's default value, or into its
    `declared` type where one is given: an optional field (`float | None`) takes "none" and
    otherwise a value of its inner type, whatever its current value is."""
    args = typing.get_args(declared)
    if type(None) in args:
        if value.lower() in _NONE_WORDS:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and inner[0] in (bool, int, float, str):
            return coerce(value, inner[0](), key)
    try:
        if isinstance(default, bool):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            f = float(value)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            parts = [p for p in value.replace("(", "").replace(")", "").split(",") if p.strip()]
            return tuple(int(p) if p.strip().lstrip("-").isdigit() else p.strip() for p in parts)
        if default is None:
            return None if value.lower() in _NONE_WORDS else value
        return value
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"--set {key}={value}: expected a {kind}") from None


def apply_overrides(config: RunConfig, overrides: list[str] | dict[str, Any]) -> RunConfig:
    """Apply `key=value` overrides to the learner config, then to the run config."""
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    learner_fields = {f.name: f for f in dataclasses.fields(config.learner)}
    learner_kw: dict[str, Any] = {}
    run_kw: dict[str, Any] = {}
    addons = [dict(a) for a in config.addons]
    for key, raw in items:
        if "." in key:  # add-on setting: "dara.eta=0.2"
            _set_addon(addons, key, raw)
        elif key in learner_fields:
            default = getattr(config.learner, key)
            learner_kw[key] = coerce(raw, default, key) if isinstance(raw, str) else raw
        elif key in RUN_KEYS:
            default = getattr(config, key)
            run_kw[key] = coerce(raw, default, key) if isinstance(raw, str) else raw
        else:
            valid = sorted(set(learner_fields) | RUN_KEYS)
            raise ConfigError(
                f"unknown setting '{key}' for {config.algo}; valid keys: {', '.join(valid)}"
            )
    learner = dataclasses.replace(config.learner, **learner_kw)
    out = dataclasses.replace(config, learner=learner, addons=tuple(addons), **run_kw)
    validate_config(out)
    return out


def _set_addon(addons: list[dict], key: str, raw: Any) -> None:
    name, field = key.split(".", 1)
    match = [a for a in addons if a.get("name") == name]
    if not match:
        active = ", ".join(a["name"] for a in addons) or "none"
        raise ConfigError(
            f"--set {key}: add-on '{name}' is not in this run (add it with --addon {name}; active: {active})"
        )
    record = match[0]
    if field not in record or field == "name":
        valid = ", ".join(k for k in record if k != "name")
        raise ConfigError(f"unknown setting '{field}' for add-on {name}; valid keys: {valid}")
    current = tuple(record[field]) if isinstance(record[field], list) else record[field]
    record[field] = (
        coerce(raw, current, key, _addon_field_type(name, field)) if isinstance(raw, str) else raw
    )


def _addon_field_type(name: str, field: str) -> Any:
    """The declared type of an add-on setting (e.g. `float | None`), None if unknown."""
    from shiftrl.addons import ADDONS

    cls = ADDONS.get(name)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return None
    return typing.get_type_hints(cls).get(field)


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def validate_config(c: RunConfig) -> None:
    checks = [
        (c.steps > 0, "steps must be positive"),
        (c.batch_size > 0, "batch_size must be positive"),
        (c.eval_every > 0, "eval_every must be positive"),
        (c.eval_episodes > 0, "eval_episodes must be positive"),
        (c.log_every > 0, "log_every must be positive"),
        (0.0 <= c.source_fraction < 1.0, "source_fraction must be in [0, 1)"),
        (c.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
        (
            c.target_fraction is None or 0.0 < c.target_fraction <= 1.0,
            "target_fraction must be in (0, 1]",
        ),
        (c.target_count is None or c.target_count > 0, "target_count must be positive"),
        (
            c.target_fraction is None or c.target_count is None,
            "give target_fraction or target_count, not both",
        ),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    if isinstance(c.seed, bool) or not isinstance(c.seed, int) or not 0 <= c.seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {c.seed}")
    # optional loggers asked for but not installed: refuse before any training, not after
    import importlib.util

    for wanted, module, extra in (
        (c.wandb_project, "wandb", "wandb"),
        (c.tensorboard, "tensorboardX", "tensorboard"),
    ):
        if wanted and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"logging to {extra} needs `pip install shiftrl[{extra}]` ({module} is not installed)"
            )
    validate_learner_config(c.learner)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _learner_range(name: str, v: Any) -> str | None:
    """Why the value of a learner hyperparameter is outside its meaning, or None. Keys are
    read by name, the same across learners: learning rates, discount, Polyak tau, IQL's
    expectile, update frequencies, sample counts and hidden-layer sizes."""
    if name == "lr" or name.endswith("_lr"):
        if not (_number(v) and v > 0):
            return "a learning rate must be a finite number > 0"
    elif name == "discount":
        if not (_number(v) and 0 < v <= 1):
            return "the discount must be in (0, 1]"
    elif name == "tau":
        if not (_number(v) and 0 < v <= 1):
            return "the target-network rate tau must be in (0, 1]"
    elif name == "expectile":
        if not (_number(v) and 0 < v < 1):
            return "the expectile must be in (0, 1)"
    elif name.endswith("_freq") or name.endswith("_period") or name.startswith("n_"):
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return "must be an integer >= 1"
    elif name == "hidden" or name.endswith("_hidden"):
        ok = isinstance(v, tuple | list) and len(v) > 0
        ok = ok and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in v)
        if not ok:
            return "hidden sizes must be positive integers, e.g. 256,256"
    return None


def validate_learner_config(learner_config: Any) -> None:
    """Range checks where a hyperparameter's meaning has a range (one line per mistake)."""
    for f in dataclasses.fields(learner_config):
        if isinstance(f.default, bool):  # a switch, e.g. IQL's cosine_actor_lr
            continue
        v = getattr(learner_config, f.name)
        why = _learner_range(f.name, v)
        if why is not None:
            shown = ",".join(map(str, v)) if isinstance(v, tuple | list) else v
            raise ConfigError(f"{f.name}={shown}: {why}")
