"""What a benchmark suite is, as typed Python data.

A suite lists *cells* (one learner on one data setting, evaluated in some environments)
and *budgets* (`quick`, `paper`: steps, evaluation schedule, seeds, network sizes). A job
is a cell at one seed under one budget; its run folder is `<study>/<cell>/seed<k>`.
A suite may declare the table layout of its paper: each cell carries its `row`,
`column` and optional `block` (a sub-table, e.g. one per base learner).

Offline-to-online jobs: a cell with an `online` phase (`Online`: the paper's online steps,
the environment, the replay at the switch, the warm-up) trains offline, then fine-tunes
online into `<job>/online` (`shiftrl.training.finetune.finetune`). How long the online
phase runs and how often it is evaluated is the budget's (`OnlineBudget`), like the
offline steps.

Add-ons with step counts of their own (SPOT's VAE `pretrain_steps`, SSAR's `iql_steps` and
`update_period`) are scaled by the budget's `addon_settings` ({add-on: {setting: value}}),
applied to the jobs that have that add-on (a recipe's add-on included) and ignored by the
others; a setting the add-on does not have fails when the jobs are planned.

Scaled profiles: `Budget.scaled(n)` is a profile at n gradient steps (its evaluation
interval and add-on step counts in proportion), for machines where a profile is too long;
its label is `<profile>-<n>` (`quick-20k`, see `profile_label`), which `Suite.budget` and
`Suite.resolve` take like a profile name, so a study folder records the scaled budget and
its label (`shiftrl bench SUITE --profile quick --steps 20000`, or `--profile quick-20k`).
`Budget.with_online_steps(m)` likewise sets the online phases of offline-to-online cells to
m steps (label suffix `-online<m>`: `quick-10k-online20k`, `--online-steps 20000`).

Everything here is plain data with `to_json` / `from_json`, so a study folder records
the suite it ran (study.json) and reports need nothing but the folder.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shiftrl.core.errors import ConfigError

PROFILES = ("quick", "paper")
_CELL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
_SCALED = re.compile(
    r"^(?P<profile>.+?)(?:-(?P<steps>[0-9]+[km]?))?(?:-online(?P<online>[0-9]+[km]?))?$"
)
_STEP_SETTING = re.compile(r"(^|_)(steps|period|every)$")
"""Add-on settings that count steps (`pretrain_steps`, `iql_steps`, `update_period`):
the ones `Budget.scaled` scales; other integers (`top_trajectories`, ...) are left alone."""
MIN_EVALS = 5
"""A scaled budget evaluates at least this many times (when it has that many steps)."""


@dataclass(frozen=True)
class Learner:
    """A learner as a suite runs it: algorithm, preset, hyperparameters, add-ons.

    `algo` may be a recipe (`spot`, `ssar-td3bc`, `ssar-cql`: a learner preset plus its
    add-on with the dataset's settings, see `shiftrl.recipes`)."""

    algo: str
    preset: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Learner hyperparameters or run settings, as `--set` takes them (strict keys)."""
    addons: tuple[dict[str, Any], ...] = ()
    """Add-on records ({"name": ..., **settings}); an unknown name fails that job only."""

    def to_json(self) -> dict[str, Any]:
        return {
            "algo": self.algo,
            "preset": self.preset,
            "overrides": _jsonable(dict(self.overrides)),
            "addons": [dict(a) for a in self.addons],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Learner:
        return cls(
            algo=d["algo"],
            preset=d.get("preset"),
            overrides={k: _untuple(v) for k, v in d.get("overrides", {}).items()},
            addons=tuple(dict(a) for a in d.get("addons", ())),
        )


@dataclass(frozen=True)
class Online:
    """A cell's online phase: after the offline run, fine-tune online (offline-to-online)."""

    steps: int
    """Online environment steps in the paper (a budget's `online.steps` may replace it)."""
    env: str | None = None
    """Gymnasium id to fine-tune in (default: the cell's first evaluation environment)."""
    replay: str | None = None
    """Replay at the switch: all | part | half | none (default: the add-ons' choice, else all)."""
    warmup: int = 0
    """Policy steps collected before the first online update (SSAR: 5,000)."""
    top: int | None = None
    """Replay 'part': keep this many best offline trajectories (default: the add-on's, 50)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Online:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Cell:
    """One learner on one data setting: a table cell, run once per seed."""

    name: str
    """Folder name, unique in the suite: letters, digits and . _ + = -"""
    learner: Learner
    target: str
    """Target dataset: a built-in ID (`hopper/medium-v0`) or a path."""
    sources: tuple[str, ...] = ()
    """Source-dynamics datasets, trained on together with the target."""
    target_fraction: float | None = None
    """Keep this share of the target data, in whole episodes seeded by the run's seed
    (DARA's 1T = 0.1); becomes the run's `target_fraction`."""
    target_count: int | None = None
    """Or keep whole target episodes up to this many transitions (ODRL's 5,000)."""
    eval_envs: tuple[str, ...] = ()
    """Gymnasium ids to evaluate in (default: the target dataset's own environment)."""
    row: str = ""
    column: str = ""
    block: str = ""
    """Where the cell sits in the suite's table: row, column, and sub-table (may be empty)."""
    online: Online | None = None
    """Fine-tune online after the offline run (an offline-to-online job); None: offline only."""

    def __post_init__(self) -> None:
        if not _CELL_NAME.match(self.name):
            raise ConfigError(f"cell name '{self.name}' must match {_CELL_NAME.pattern}")
        if self.target_fraction is not None and self.target_count is not None:
            raise ConfigError(f"cell '{self.name}': give target_fraction or target_count, not both")
        if self.online is not None and self.online.steps <= 0:
            raise ConfigError(f"cell '{self.name}': online steps must be positive")

    @property
    def data_label(self) -> str:
        """'hopper/medium-v0[10%] + hopper-mass-2.0/medium-v0' style description."""
        t = self.target
        if self.target_fraction is not None:
            t += f"[{self.target_fraction:g}]"
        if self.target_count is not None:
            t += f"[{self.target_count} transitions]"
        return " + ".join([t, *self.sources])

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["learner"] = self.learner.to_json()
        d["sources"], d["eval_envs"] = list(self.sources), list(self.eval_envs)
        if self.online is None:
            del d["online"]  # offline cells record what they always did
        else:
            d["online"] = self.online.to_json()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Cell:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["learner"] = Learner.from_json(d["learner"])
        kw["sources"] = tuple(d.get("sources", ()))
        kw["eval_envs"] = tuple(d.get("eval_envs", ()))
        kw["online"] = Online.from_json(d["online"]) if d.get("online") else None
        return cls(**kw)


@dataclass(frozen=True)
class OnlineBudget:
    """How long and how often the online phases of offline-to-online cells run."""

    steps: int | None = None
    """Online steps of every online phase; None keeps each cell's own (the papers')."""
    eval_every: int = 10_000
    eval_episodes: int = 10
    steps_per_iter: int = 1000
    """Environment steps collected between two bursts of updates (divides the others)."""

    def online_steps(self, online: Online) -> int:
        return self.steps if self.steps is not None else online.steps

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> OnlineBudget:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})


@dataclass(frozen=True)
class Budget:
    """How long and how often: one of a suite's profiles (`quick`, `paper`)."""

    steps: int
    eval_every: int
    eval_episodes: int
    seeds: tuple[int, ...]
    hidden: tuple[int, ...] | None = None
    """Hidden sizes for every network of every learner; None keeps each learner's paper size."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Further run settings for every job (e.g. batch_size, log_every)."""
    note: str = ""
    """What the budget is and why (shown in reports), e.g. '10% of the papers' 1M steps'."""
    addon_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """{add-on: {setting: value}} for the jobs that have that add-on (others ignore it), e.g.
    {"spot": {"pretrain_steps": 10_000}} to scale an add-on's own steps with `steps`."""
    online: OnlineBudget = field(default_factory=OnlineBudget)
    """The online phases of offline-to-online cells (unused by offline cells)."""

    def scaled(self, steps: int, profile: str = "") -> Budget:
        """This budget at `steps` gradient steps, for a machine where it is too long (or to
        run it longer). In proportion to `steps / self.steps`: the evaluation interval (a
        divisor of `steps` where one is close, so every evaluation falls on a chunk boundary,
        and at least `MIN_EVALS` evaluations) and every add-on step count in
        `addon_settings` (`*_steps`, `*_period`, `*_every`; at least 1). Seeds, networks,
        run settings and the online phases of offline-to-online cells stay as they are.
        `profile` names this budget in the note ("scaled to 20,000 steps from the quick
        budget (100,000)")."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"--steps must be a positive number of steps, got {steps!r}")
        if steps == self.steps:
            return self
        addon_settings = {
            name: {k: _scale_steps(k, v, steps, self.steps) for k, v in kv.items()}
            for name, kv in self.addon_settings.items()
        }
        what = f"the {profile} budget" if profile else "the budget"
        scaling = f"scaled to {steps:,} steps from {what} ({self.steps:,})"
        return dataclasses.replace(
            self,
            steps=steps,
            eval_every=_scaled_eval_every(self.eval_every, self.steps, steps),
            addon_settings=addon_settings,
            note=f"{self.note}; {scaling}" if self.note else scaling,
        )

    def with_online_steps(self, steps: int, profile: str = "") -> Budget:
        """This budget with every online phase at `steps` environment steps (each cell's own
        steps otherwise: the papers'), its online evaluation interval in proportion to the
        profile's (at least `MIN_EVALS` evaluations), on multiples of `steps_per_iter`."""
        o = self.online
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < o.steps_per_iter:
            raise ConfigError(
                f"--online-steps must be a number of steps >= {o.steps_per_iter:,}, got {steps!r}"
            )
        if steps % o.steps_per_iter:
            raise ConfigError(
                f"--online-steps must be a multiple of {o.steps_per_iter:,} (the environment "
                f"steps between two bursts of updates), got {steps:,}"
            )
        if steps == o.steps:
            return self
        every = o.eval_every if o.steps is None else o.eval_every * steps // o.steps
        every = min(every, steps // MIN_EVALS) // o.steps_per_iter * o.steps_per_iter
        what = f"the {profile} budget's" if profile else "the budget's"
        was = "each cell's own" if o.steps is None else f"{o.steps:,}"
        scaling = f"online phases at {steps:,} steps instead of {what} ({was})"
        return dataclasses.replace(
            self,
            online=dataclasses.replace(o, steps=steps, eval_every=max(o.steps_per_iter, every)),
            note=f"{self.note}; {scaling}" if self.note else scaling,
        )

    def describe(self, with_online: bool = False) -> str:
        nets = "the papers' network sizes" if self.hidden is None else f"networks {self.hidden}"
        extra = "".join(f", {k}={v}" for k, v in self.settings.items())
        extra += "".join(
            f", {name}.{k}={_num(v)}"
            for name, kv in self.addon_settings.items()
            for k, v in kv.items()
        )
        text = (
            f"{self.steps:,} gradient steps, evaluation every {self.eval_every:,} steps with "
            f"{self.eval_episodes} episodes, {nets}{extra}"
        )
        if with_online:
            o = self.online
            steps = "each cell's own" if o.steps is None else f"{o.steps:,}"
            text += (
                f"; then {steps} online steps, evaluation every {o.eval_every:,} steps with "
                f"{o.eval_episodes} episodes"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "seeds": list(self.seeds),
            "hidden": None if self.hidden is None else list(self.hidden),
            "settings": _jsonable(dict(self.settings)),
            "note": self.note,
            "addon_settings": {k: _jsonable(dict(v)) for k, v in self.addon_settings.items()},
            "online": self.online.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Budget:
        return cls(
            steps=d["steps"],
            eval_every=d["eval_every"],
            eval_episodes=d["eval_episodes"],
            seeds=tuple(d["seeds"]),
            hidden=None if d.get("hidden") is None else tuple(d["hidden"]),
            settings=dict(d.get("settings", {})),
            note=d.get("note", ""),
            addon_settings={
                k: {kk: _untuple(vv) for kk, vv in v.items()}
                for k, v in d.get("addon_settings", {}).items()
            },
            online=OnlineBudget.from_json(d.get("online")),
        )


@dataclass(frozen=True)
class TableLayout:
    """The paper's table: row and column order, sub-tables, and arrows between columns."""

    title: str
    row_header: str = "dataset"
    rows: tuple[str, ...] = ()
    """Row order; rows not listed follow in order of appearance."""
    columns: tuple[str, ...] = ()
    blocks: tuple[str, ...] = ()
    arrows: Mapping[str, str] = field(default_factory=dict)
    """column -> baseline column: the column's entries get ↑ (higher mean) or ↓ (lower)."""
    note: str = ""
    per_env_tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Extra tables of per-environment scores: label -> env ids. A cell's entry is the mean
    of its runs' `eval/<env>/normalized_score` over the listed envs it was evaluated in
    (SRPO: the base dynamics alone, beside the main table's mean over all its envs)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "row_header": self.row_header,
            "rows": list(self.rows),
            "columns": list(self.columns),
            "blocks": list(self.blocks),
            "arrows": dict(self.arrows),
            "note": self.note,
            "per_env_tables": {k: list(v) for k, v in self.per_env_tables.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TableLayout:
        return cls(
            title=d["title"],
            row_header=d.get("row_header", "dataset"),
            rows=tuple(d.get("rows", ())),
            columns=tuple(d.get("columns", ())),
            blocks=tuple(d.get("blocks", ())),
            arrows=dict(d.get("arrows", {})),
            note=d.get("note", ""),
            per_env_tables={k: tuple(v) for k, v in d.get("per_env_tables", {}).items()},
        )


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    cells: tuple[Cell, ...]
    profiles: Mapping[str, Budget]
    layout: TableLayout | None = None
    placeholder: str | None = None
    """Set while the suite waits for a method issue: what is missing (shown by the CLI)."""
    references: tuple[str, ...] = ()
    """The papers whose tables the suite reproduces."""
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0

    def __post_init__(self) -> None:
        names = [c.name for c in self.cells]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"suite '{self.name}': duplicate cell names {', '.join(dup)}")
        missing = [p for p in PROFILES if p not in self.profiles]
        if missing:
            raise ConfigError(f"suite '{self.name}' lacks profile(s) {', '.join(missing)}")

    def budget(self, profile: str) -> Budget:
        """The budget of a profile name or of a scaled profile's label (`quick-20k`)."""
        return self.resolve(profile)[1]

    def profile_name(self, label: str) -> str:
        """The profile a label names or scales: 'quick-20k' -> 'quick', 'quick' -> 'quick'."""
        m = _SCALED.match(label)
        if label not in self.profiles and m and m["profile"] in self.profiles:
            return m["profile"]
        return label

    def resolve(
        self, profile: str, steps: int | None = None, online_steps: int | None = None
    ) -> tuple[str, Budget]:
        """(label, budget) of `profile` at `steps` gradient steps and `online_steps` online
        steps (None: the profile's own).

        `profile` is a profile name (`quick`) or a scaled profile's label (`quick-20k`,
        `quick-10k-online20k`, as a study folder records it); the label is
        `profile_label(name, steps, online_steps)`, the name alone when nothing is scaled."""
        if profile in self.profiles:
            name, budget = profile, self.profiles[profile]
        elif (
            (m := _SCALED.match(profile))
            and (m["steps"] or m["online"])
            and m["profile"] in self.profiles
        ):
            name, budget = m["profile"], self.profiles[m["profile"]]
            for flag, given, text in (
                ("--steps", steps, m["steps"]),
                ("--online-steps", online_steps, m["online"]),
            ):
                if given is not None and text and given != parse_steps(text):
                    raise ConfigError(
                        f"{flag} {given} contradicts --profile {profile}; "
                        f"give --profile {name} {flag} {given}"
                    )
            steps = parse_steps(m["steps"]) if m["steps"] else steps
            online_steps = parse_steps(m["online"]) if m["online"] else online_steps
        else:
            raise ConfigError(
                f"unknown profile '{profile}' for suite '{self.name}'; "
                f"available: {', '.join(self.profiles)} (scaled: e.g. quick --steps 20000)"
            )
        if steps == budget.steps:
            steps = None
        if steps is not None:
            budget = budget.scaled(steps, name)
        if online_steps is not None and online_steps == budget.online.steps:
            online_steps = None
        if online_steps is not None:
            budget = budget.with_online_steps(online_steps, name)
        return profile_label(name, steps, online_steps), budget

    def layout_or_default(self) -> TableLayout:
        return self.layout or TableLayout(title=self.name)


def steps_label(steps: int) -> str:
    """20000 -> '20k', 1000000 -> '1m', 2500 -> '2500' (read back by `parse_steps`)."""
    if steps % 1_000_000 == 0:
        return f"{steps // 1_000_000}m"
    if steps % 1000 == 0:
        return f"{steps // 1000}k"
    return str(steps)


def parse_steps(text: str) -> int:
    """'20k' -> 20000, '1m' -> 1000000, '2500' -> 2500."""
    scale = {"k": 1000, "m": 1_000_000}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def profile_label(profile: str, steps: int | None, online_steps: int | None = None) -> str:
    """A scaled profile's label: 'quick' at 20,000 steps -> 'quick-20k'; with 5,000 online
    steps -> 'quick-20k-online5k'."""
    label = profile if steps is None else f"{profile}-{steps_label(steps)}"
    return label if online_steps is None else f"{label}-online{steps_label(online_steps)}"


def _scale_steps(key: str, value: Any, steps: int, old_steps: int) -> Any:
    """An add-on step count in proportion to the learner's steps (rounded, at least 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or not _STEP_SETTING.search(key):
        return value
    return max(1, (value * steps + old_steps // 2) // old_steps)


def _scaled_eval_every(eval_every: int, old_steps: int, steps: int) -> int:
    """The evaluation interval at `steps` steps: in proportion, at most steps / MIN_EVALS;
    the largest divisor of `steps` not above that when one is within a factor 2 (so the
    training chunks stay long and every evaluation lands on one), else that value rounded
    down to 1, 2, 2.5 or 5 x 10^k (the trainer also evaluates at the final step)."""
    target = max(1, min(eval_every * steps // old_steps, steps // MIN_EVALS))
    divisor = max(
        d
        for i in range(1, math.isqrt(steps) + 1)
        if steps % i == 0
        for d in (i, steps // i)
        if d <= target
    )
    if 2 * divisor >= target:
        return divisor
    nice = [m * 10**k for k in range(len(str(target))) for m in (1, 2, 2.5, 5)]
    return int(max(n for n in nice if n <= target and n == int(n)))


def learner_algo(algo: str) -> str:
    """The learner behind a suite's `algo`: itself, or a recipe's learner (`spot` -> `td3bc`)."""
    from shiftrl.recipes import get_recipe

    recipe = get_recipe(algo)
    return recipe.learner if recipe is not None else algo


def net_overrides(algo: str, hidden: tuple[int, ...] | None) -> dict[str, Any]:
    """Set every hidden-size field the learner has (`hidden`, `actor_hidden`, `vae_hidden`, ...);
    `algo` may be a recipe (its learner's fields)."""
    if hidden is None:
        return {}
    from shiftrl.learners import get_learner

    fields = get_learner(learner_algo(algo)).config_fields()
    return {k: tuple(hidden) for k in fields if k == "hidden" or k.endswith("_hidden")}


def _num(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _untuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
