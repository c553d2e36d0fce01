"""What a benchmark suite is, as typed Python data.

A suite lists *cells* (one learner on one data setting, evaluated in some environments)
and *budgets* (`quick`, `paper`: steps, evaluation schedule, seeds, network sizes). A job
is a cell at one seed under one budget; its run folder is `<study>/<cell>/seed<k>`.
A suite may declare the table layout of its paper: each cell carries its `row`,
`column` and optional `block` (a sub-table, e.g. one per base learner).

Everything here is plain data with `to_json` / `from_json`, so a study folder records
the suite it ran (study.json) and reports need nothing but the folder.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shiftrl.core.errors import ConfigError

PROFILES = ("quick", "paper")
_CELL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


@dataclass(frozen=True)
class Learner:
    """A learner as a suite runs it: algorithm, preset, hyperparameters, add-ons."""

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

    def __post_init__(self) -> None:
        if not _CELL_NAME.match(self.name):
            raise ConfigError(f"cell name '{self.name}' must match {_CELL_NAME.pattern}")
        if self.target_fraction is not None and self.target_count is not None:
            raise ConfigError(f"cell '{self.name}': give target_fraction or target_count, not both")

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
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Cell:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["learner"] = Learner.from_json(d["learner"])
        kw["sources"] = tuple(d.get("sources", ()))
        kw["eval_envs"] = tuple(d.get("eval_envs", ()))
        return cls(**kw)


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

    def describe(self) -> str:
        nets = "the papers' network sizes" if self.hidden is None else f"networks {self.hidden}"
        extra = "".join(f", {k}={v}" for k, v in self.settings.items())
        return (
            f"{self.steps:,} gradient steps, evaluation every {self.eval_every:,} steps with "
            f"{self.eval_episodes} episodes, {nets}{extra}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "seeds": list(self.seeds),
            "hidden": None if self.hidden is None else list(self.hidden),
            "settings": _jsonable(dict(self.settings)),
            "note": self.note,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "row_header": self.row_header,
            "rows": list(self.rows),
            "columns": list(self.columns),
            "blocks": list(self.blocks),
            "arrows": dict(self.arrows),
            "note": self.note,
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
        if profile not in self.profiles:
            raise ConfigError(
                f"unknown profile '{profile}' for suite '{self.name}'; "
                f"available: {', '.join(self.profiles)}"
            )
        return self.profiles[profile]

    def layout_or_default(self) -> TableLayout:
        return self.layout or TableLayout(title=self.name)


def net_overrides(algo: str, hidden: tuple[int, ...] | None) -> dict[str, Any]:
    """Set every hidden-size field the learner has (`hidden`, `actor_hidden`, `vae_hidden`, ...)."""
    if hidden is None:
        return {}
    from shiftrl.learners import get_learner

    fields = get_learner(algo).config_fields()
    return {k: tuple(hidden) for k in fields if k == "hidden" or k.endswith("_hidden")}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _untuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
