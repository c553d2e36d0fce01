"""One line per run of a study (`shiftrl report DIR --runs`): how far each job got, its
scores so far, and any logged metric a reader needs to judge it (`--metric`), e.g. DARA's
delta_r per domain or SSAR's trusted fraction, read while a sweep is still running.

A metric pattern is a key of metrics.jsonl or a glob over keys (`addon/dara/*`); a run's
value is the mean over its last `window` rows that log the key (the add-ons' diagnostics
are noisy from one evaluation to the next). Model-based runs also show the seconds they
spent training their dynamics ensemble / dynamics reward (0: taken from the cache).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftrl.bench.model_costs import model_records
from shiftrl.bench.results import Study, _read_rows, load_study
from shiftrl.bench.suites.spec import Cell
from shiftrl.core.errors import ConfigError


@dataclass
class RunLine:
    run: str
    """`<cell>/seed<k>`."""
    status: str
    """finished | partial (running, or stopped and resumable) | not started."""
    step: int
    planned: int
    last: float | None
    best: float | None
    metrics: dict[str, float] = field(default_factory=dict)


def run_lines(
    study_dir: str | Path, patterns: Sequence[str] = (), window: int = 3
) -> list[RunLine]:
    """Every planned or present run of the study, in the study's cell order."""
    if window < 1:
        raise ConfigError("--window must be at least 1")
    study = load_study(study_dir)
    lines = []
    for cell in study.cells:
        by_seed = {r.seed: r for r in cell.runs}
        seeds = sorted(set(cell.planned_seeds) | set(by_seed))
        for seed in seeds:
            run = by_seed.get(seed)
            name = f"{cell.cell.name}/seed{seed}"
            if run is None or not run.steps:
                planned = run.planned_steps if run else _planned(study, cell.cell)
                lines.append(RunLine(name, "not started", 0, planned, None, None))
                continue
            scores = [s for s in run.scores if s is not None]
            rows = _read_rows(run.run_dir / "metrics.jsonl") if run.run_dir else []
            lines.append(
                RunLine(
                    name,
                    "finished" if run.finished else "partial",
                    run.steps[-1],
                    run.planned_steps,
                    scores[-1] if scores else None,
                    max(scores) if scores else None,
                    {**_model_seconds(run.run_dir), **_metrics(rows, patterns, window)},
                )
            )
    return lines


def _planned(study: Study, cell: Cell) -> int:
    """The steps a job not started yet will run (online-only cells: environment steps)."""
    if study.budget is None:
        return 0
    if cell.online_only:
        return study.budget.online.online_steps(cell.online)
    return study.budget.steps


def _model_seconds(run_dir: Path | None) -> dict[str, float]:
    """Seconds this run spent training its models (models.json; 0 when it took them from
    the cache): `dynamics s`, `dynamics_reward s`."""
    return {
        f"{kind} s": 0.0 if record.get("reused") else float(record["seconds"])
        for kind, record in model_records(run_dir)
        if _number(record.get("seconds"))
    }


def _metrics(rows: list[dict[str, Any]], patterns: Sequence[str], window: int) -> dict[str, float]:
    keys = dict.fromkeys(k for p in patterns for r in rows for k in r if fnmatch.fnmatchcase(k, p))
    out = {}
    for key in keys:
        vals = [r[key] for r in rows if _number(r.get(key))][-window:]
        if vals:
            out[key] = sum(vals) / len(vals)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def table(lines: list[RunLine]) -> tuple[list[str], list[list[str]]]:
    """Header and rows as text (scores to one decimal, metrics to three significant digits)."""
    keys = list(dict.fromkeys(k for line in lines for k in line.metrics))
    header = ["run", "status", "step", "last", "best", *keys]
    rows = []
    for line in lines:
        progress = f"{line.step:,} / {line.planned:,}"
        cells = [line.run, line.status, progress, _fmt(line.last, ".1f"), _fmt(line.best, ".1f")]
        rows.append(cells + [_fmt(line.metrics.get(k), ".3g") for k in keys])
    return header, rows


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)
