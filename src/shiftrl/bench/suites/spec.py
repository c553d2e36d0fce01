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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shiftrl.bench.suites.budget import (  # noqa: F401  (re-exported: the suite vocabulary)
    MIN_EVALS,
    Budget,
    OnlineBudget,
    jsonable,
    parse_steps,
    profile_label,
    steps_label,
    untuple,
)
from shiftrl.core.errors import ConfigError

PROFILES = ("quick", "paper")
_CELL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
_SCALED = re.compile(
    r"^(?P<profile>.+?)(?:-(?P<steps>[0-9]+[km]?))?(?:-online(?P<online>[0-9]+[km]?))?$"
)


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
            "overrides": jsonable(dict(self.overrides)),
            "addons": [dict(a) for a in self.addons],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Learner:
        return cls(
            algo=d["algo"],
            preset=d.get("preset"),
            overrides={k: untuple(v) for k, v in d.get("overrides", {}).items()},
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
    from_scratch: bool = False
    """An online-only job: no offline phase, the cell's learner (an online context learner,
    `shiftrl.training.context_run`) trains from scratch in `env` into the job's folder."""

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not self.from_scratch:
            del d["from_scratch"]  # offline-to-online cells record what they always did
        return d

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
        if self.online_only and (self.target or self.sources or not self.online.env):
            raise ConfigError(f"cell '{self.name}': an online-only cell has an env and no datasets")

    @property
    def online_only(self) -> bool:
        """A cell trained online from scratch (no offline phase, no data)."""
        return self.online is not None and self.online.from_scratch

    @property
    def data_label(self) -> str:
        """'hopper/medium-v0[10%] + hopper-mass-2.0/medium-v0' style description."""
        if self.online_only:
            return f"online in {self.online.env}"
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
    block_titles: Mapping[str, str] = field(default_factory=dict)
    """block -> its own heading, for a block whose data `title` does not describe (SRPO's
    online block); other blocks are headed "<title>: <block>"."""

    def heading(self, block: str) -> str:
        if block in self.block_titles:
            return self.block_titles[block]
        return self.title + (f": {block}" if block else "")

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
            **({"block_titles": dict(self.block_titles)} if self.block_titles else {}),
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
            block_titles=dict(d.get("block_titles", {})),
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
