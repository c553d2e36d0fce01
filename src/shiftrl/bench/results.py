"""Reading a study folder: run folders into per-run and per-cell results (`load_study`).

A study folder holds `study.json` (written by `shiftrl bench`) and one run folder per job,
`<cell>/seed<k>/` (config.json, metrics.jsonl, and `online/` for offline-to-online jobs);
without a study.json any folder of run folders is read as a study.

Per-environment scores: a run evaluated in several environments logs each one's
`eval/<env>/normalized_score` beside their mean `normalized_score` (the cell's score).
`RunResult.env_scores` keeps the former; `Study.per_env_tables` ({label: env ids}, the
layout's optional `per_env_tables` in study.json) names the environments a report
tabulates on their own, and `Study.in_envs(envs)` is the study scored in those alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shiftrl.bench.suites.spec import Budget, Cell, Learner, TableLayout
from shiftrl.core.errors import ConfigError, ShiftRLError

ONLINE_DIR = "online"  # as bench.worker.ONLINE_DIR (kept free of the worker's imports)
LAST_EVALS = 3
"""Evaluations averaged by the `last3` statistic."""
_ENV_KEY = re.compile(r"^eval/(.+)/normalized_score$")


# ---------------------------------------------------------------------------------------
# Reading a study
# ---------------------------------------------------------------------------------------
@dataclass
class RunResult:
    seed: int
    steps: list[int]
    scores: list[float | None]
    planned_steps: int
    version: str = ""
    online: RunResult | None = None
    """The online phase of an offline-to-online job, once it started."""
    planned_online: int | None = None
    """Online steps the job plans (None: an offline job)."""
    regret: float | None = None
    """The finished online phase's regret (CORL: mean of 1 - score / 100 over evaluations)."""
    env_scores: dict[str, list[float | None]] = field(default_factory=dict)
    """Per evaluation environment: its normalized score at each of `steps` (None: missing)."""
    run_dir: Path | None = None
    """The run folder it was read from."""

    def in_envs(self, envs: Sequence[str], fallback: bool = False) -> RunResult:
        """The offline run scored by the mean over `envs` alone (those it has scores for) at
        each evaluation; `fallback`: a run without per-env scores keeps its own (a run of a
        single evaluation environment logged before per-env scores were)."""
        if fallback and not self.env_scores:
            scores = list(self.scores)
        else:
            cols = [self.env_scores[e] for e in envs if e in self.env_scores]
            scores = [_mean(vals) for vals in zip(*cols, strict=True)] if cols else []
            scores += [None] * (len(self.steps) - len(scores))
        return RunResult(
            self.seed,
            list(self.steps),
            scores,
            self.planned_steps,
            self.version,
            run_dir=self.run_dir,
        )

    @property
    def finished(self) -> bool:
        return bool(self.steps) and self.steps[-1] >= self.planned_steps

    @property
    def complete(self) -> bool:
        """The offline run finished and, for an offline-to-online job, its online phase too."""
        if not self.finished:
            return False
        return self.planned_online is None or (self.online is not None and self.online.finished)

    def value(self, which: str) -> float | None:
        """final / last3 / best (offline run), online / online_best / regret (online phase)."""
        if which in ("final", "last3", "best"):
            return getattr(self, which)
        o = self.online
        if o is None or not o.finished:
            return None
        return {"online": o.final, "online_best": o.best, "regret": self.regret}[which]

    @property
    def final(self) -> float | None:
        return self.scores[-1] if self.finished else None

    @property
    def last3(self) -> float | None:
        """Mean of the last three evaluations: less at the mercy of one evaluation's fall than
        `final` (hopper's IQL runs drop 40 points at one evaluation and recover at the next)."""
        valid = [s for s in self.scores[-LAST_EVALS:] if s is not None]
        return float(np.mean(valid)) if self.finished and valid else None

    @property
    def best(self) -> float | None:
        valid = [s for s in self.scores if s is not None]
        return max(valid) if self.finished and valid else None


@dataclass
class CellResult:
    cell: Cell
    runs: list[RunResult] = field(default_factory=list)
    planned_seeds: tuple[int, ...] = ()
    messages: list[str] = field(default_factory=list)

    def values(self, which: str) -> list[float]:
        vals = [r.value(which) for r in self.runs]
        return [float(v) for v in vals if v is not None]

    def stat(self, which: str) -> tuple[float, float] | None:
        v = self.values(which)
        return (float(np.mean(v)), float(np.std(v))) if v else None

    def in_envs(self, envs: Sequence[str]) -> CellResult:
        """The cell scored in `envs` alone (offline runs); no runs if it evaluates in none."""
        evaluated = set(self.cell.eval_envs) | {e for r in self.runs for e in r.env_scores}
        if not evaluated & set(envs):
            return dataclasses.replace(self, runs=[])
        single = len(self.cell.eval_envs) == 1  # runs of one env: its score is the mean
        runs = [r.in_envs(envs, fallback=single) for r in self.runs]
        return dataclasses.replace(self, runs=runs)

    @property
    def n_finished(self) -> int:
        return sum(r.complete for r in self.runs)


@dataclass
class Study:
    dir: Path
    name: str
    profile: str
    description: str
    budget: Budget | None
    layout: TableLayout
    cells: list[CellResult]
    placeholder: str | None = None
    references: tuple[str, ...] = ()
    per_env_tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """{table label: env ids}: tables of the cells' scores in those environments alone."""
    unselected: int = 0
    """The suite's cells this study never planned (it was run with `--only`); not shown."""

    def in_envs(self, envs: Sequence[str]) -> Study:
        """The study with each cell scored in `envs` alone (cells evaluated in none: no runs)."""
        return dataclasses.replace(
            self, cells=[c.in_envs(envs) for c in self.cells], per_env_tables={}
        )

    @property
    def online(self) -> bool:
        """An offline-to-online study: some cell has an online phase (or a run has one)."""
        return any(
            (c.cell.online is not None and not c.cell.online_only) or any(r.online for r in c.runs)
            for c in self.cells
        )


def _ordered(declared: Sequence[str], seen: Sequence[str]) -> list[str]:
    """The declared order, then undeclared entries; declared ones with no cell are dropped
    (a study run with `--only` shows the rows and columns it ran, not the whole suite's)."""
    present = set(seen)
    out = [x for x in declared if x in present]
    out += [x for x in dict.fromkeys(seen) if x not in out]
    return out


def grid(study: Study) -> tuple[list[str], list[str], list[str], dict]:
    """(blocks, rows, columns, {(block, row, column): CellResult})."""
    lay = study.layout
    cells = {(c.cell.block, c.cell.row, c.cell.column): c for c in study.cells}
    blocks = _ordered(lay.blocks, [c.cell.block for c in study.cells])
    rows = _ordered(lay.rows, [c.cell.row for c in study.cells])
    cols = _ordered(lay.columns, [c.cell.column for c in study.cells])
    return blocks, rows, cols, cells


def _mean(vals: Sequence[float | None]) -> float | None:
    valid = [v for v in vals if v is not None]
    return float(np.mean(valid)) if valid else None


def _score(v: Any) -> float | None:
    """A logged score, or None where it is missing or not a number (NaN: no reference)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        return None
    return float(v)


def _env_scores(rows: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """{env: score per row} from the rows' `eval/<env>/normalized_score` keys."""
    envs = dict.fromkeys(m.group(1) for r in rows for k in r if (m := _ENV_KEY.match(k)))
    return {e: [_score(r.get(f"eval/{e}/normalized_score")) for r in rows] for e in envs}


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    return sorted(rows, key=lambda r: r.get("step", 0))


def _read_run(
    run_dir: Path, planned_steps: int | None, planned_online: int | None = None
) -> RunResult | None:
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        return None
    meta = json.loads(cfg_path.read_text())
    if meta.get("kind") == "online-context":  # an online-only job: scores vs env steps
        rows = _read_rows(run_dir / "metrics.jsonl")
        online = meta["online_config"]
        return RunResult(
            seed=int(online.get("seed", 0)),
            steps=[int(r["step"]) for r in rows],
            scores=[r.get("normalized_score") for r in rows],
            planned_steps=int(planned_steps or online["total_steps"]),
            version=str(meta.get("shiftrl_version", "")),
            env_scores=_env_scores(rows),
            run_dir=run_dir,
        )
    if "config" not in meta:  # not an offline run folder (e.g. an online phase's)
        return None
    config = meta["config"]
    rows = _read_rows(run_dir / "metrics.jsonl")
    run = RunResult(
        seed=int(config.get("seed", 0)),
        steps=[int(r["step"]) for r in rows],
        scores=[r.get("normalized_score") for r in rows],
        planned_steps=int(planned_steps or config["steps"]),
        version=str(meta.get("shiftrl_version", "")),
        planned_online=planned_online,
        env_scores=_env_scores(rows),
        run_dir=run_dir,
    )
    online_dir = run_dir / ONLINE_DIR
    if (online_dir / "config.json").exists():
        online_meta = json.loads((online_dir / "config.json").read_text())
        planned = planned_online or int(online_meta.get("online_config", {}).get("total_steps", 0))
        online_rows = _read_rows(online_dir / "metrics.jsonl")
        run.online = RunResult(
            seed=run.seed,
            steps=[int(r["step"]) for r in online_rows],
            scores=[r.get("normalized_score") for r in online_rows],
            planned_steps=planned,
        )
        if run.planned_online is None:
            run.planned_online = planned
        if run.online.finished:
            run.regret = _regret(online_dir, run.online.scores)
    return run


def _regret(online_dir: Path, scores: list[float | None]) -> float | None:
    """finetune.json's regret, or the same mean of 1 - score / 100 from the metrics."""
    path = online_dir / "finetune.json"
    if path.exists():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return float(json.loads(path.read_text())["regret"])
    valid = [s for s in scores if s is not None]
    return float(np.mean([1 - s / 100 for s in valid])) if valid else None


def _seed_dirs(cell_dir: Path) -> list[Path]:
    def key(p: Path) -> tuple[int, str]:
        m = re.fullmatch(r"seed(\d+)", p.name)
        return (int(m.group(1)) if m else 1 << 30, p.name)

    return sorted((p for p in cell_dir.glob("seed*") if p.is_dir()), key=key)


def load_study(study_dir: str | Path) -> Study:
    d = Path(study_dir)
    if not d.is_dir():
        raise ConfigError(f"no such study folder: {d}")
    path = d / "study.json"
    if path.exists():
        try:
            return _load_recorded(d, json.loads(path.read_text()))
        except ShiftRLError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(
                f"{path}: not a readable shiftrl study record ({type(e).__name__}); "
                "the study folder is damaged"
            ) from None
    return _discover(d)


def _load_recorded(d: Path, rec: dict[str, Any]) -> Study:
    """The study of a folder with a study.json record `rec`."""
    budget = Budget.from_json(rec["budget"])
    planned = {k.split("/")[0] for k in rec.get("jobs", {})}
    cells, unselected = [], 0
    for cj in rec["cells"]:
        cell = Cell.from_json(cj)
        if planned and cell.name not in planned and not (d / cell.name).is_dir():
            unselected += 1  # left out by `--only`: not part of this study
            continue
        planned_online = None if cell.online is None else budget.online.online_steps(cell.online)
        planned_steps = budget.steps
        if cell.online_only:  # no offline phase: the run's steps are the online steps
            planned_steps, planned_online = planned_online, None
        runs = [
            r
            for sd in _seed_dirs(d / cell.name)
            if (r := _read_run(sd, planned_steps, planned_online)) is not None
        ]
        msgs = sorted(
            {
                v.get("message", "")
                for k, v in rec.get("jobs", {}).items()
                if k.split("/")[0] == cell.name and v.get("status") == "failed" and v.get("message")
            }
        )
        cells.append(CellResult(cell, runs, tuple(rec.get("seeds", budget.seeds)), msgs))
    per_env = rec["layout"].get("per_env_tables") or {}
    return Study(
        d,
        rec["suite"],
        rec["profile"],
        rec.get("description", ""),
        budget,
        TableLayout.from_json(rec["layout"]),
        cells,
        rec.get("placeholder"),
        tuple(rec.get("references", ())),
        {label: tuple(envs) for label, envs in per_env.items()},
        unselected,
    )


def _data_row(dataset: str) -> str:
    """A run's data as a table row: a built-in ID in its one canonical spelling, so runs on
    `hopper/medium-v0` and on its alias `hopper-base/medium-v0` share a row; a path or a
    name as recorded."""
    if not dataset:
        return "data"
    from shiftrl.core.errors import ShiftRLError
    from shiftrl.data import registry

    try:
        return registry.qualified_id(*registry.resolve_build(dataset, None, 0))
    except (ShiftRLError, KeyError, ValueError):
        return dataset


def _discover(d: Path) -> Study:
    """A folder of run folders without study.json: cells are the folders of `seed*/` runs."""
    cells: dict[Path, CellResult] = {}
    for cfg in sorted(d.rglob("config.json")):
        run_dir = cfg.parent
        if run_dir.name == ONLINE_DIR and (run_dir.parent / "config.json").exists():
            continue  # an offline-to-online run's online phase: read with its run
        run = _read_run(run_dir, None)
        if run is None:
            continue
        seed_dir = run_dir.name.startswith("seed") and run_dir != d
        cell_dir = run_dir.parent if seed_dir else run_dir
        if cell_dir not in cells:
            conf = json.loads(cfg.read_text())["config"]
            rel = cell_dir.relative_to(d)  # "." when DIR is itself a run folder
            name = d.resolve().name if rel == Path(".") else rel.as_posix().replace("/", ".")
            cell = Cell(
                name=re.sub(r"[^A-Za-z0-9._+=-]", "_", name),
                learner=Learner(conf["algo"], conf.get("preset"), addons=tuple(conf["addons"])),
                target=conf.get("dataset", ""),
                sources=tuple(conf.get("sources", ())),
                eval_envs=tuple(conf.get("eval_envs", ())),
                row=_data_row(conf.get("dataset", "")),
                column=conf["algo"] + "".join(f"+{a['name']}" for a in conf.get("addons", [])),
            )
            cells[cell_dir] = CellResult(cell)
        cells[cell_dir].runs.append(run)
    if not cells:
        raise ConfigError(f"{d}: no study.json and no run folders (config.json) inside")
    for c in cells.values():
        c.runs.sort(key=lambda r: r.seed)
        c.planned_seeds = tuple(r.seed for r in c.runs)
    return Study(
        d,
        d.name,
        "",
        "",
        None,
        TableLayout(title=d.name, row_header="dataset"),
        list(cells.values()),
    )
