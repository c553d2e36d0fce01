"""The learned models behind a study's model-based runs and what they cost: one line per
dynamics ensemble / dynamics reward (read from the runs' models.json), with the data it was
fitted on, its training time and size, and how many runs used it (a model is trained once
per dataset and settings, then taken from the cache)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftrl.bench.render import Block
from shiftrl.bench.results import Study
from shiftrl.training.rundir import MODELS_FILE

LABELS = {"dynamics": "dynamics ensemble", "dynamics_reward": "dynamics reward"}


@dataclass
class LearnedModel:
    kind: str
    """"dynamics" | "dynamics_reward"."""
    data: str
    seconds: float | None
    size: str
    trained_by: str
    """`<cell>/seed<k>` of the run that trained it, or "cache" (trained before this study)."""
    runs: int = 0


def learned_models(study: Study) -> list[LearnedModel]:
    """Every model the study's runs record, in the order runs first used them."""
    found: dict[tuple[str, str], LearnedModel] = {}
    for cell in study.cells:
        for run in cell.runs:
            for kind, record in model_records(run.run_dir):
                key = (kind, str(record.get("key") or record.get("config")))
                model = found.get(key)
                if model is None:
                    model = found[key] = LearnedModel(
                        kind,
                        (record.get("dataset") or {}).get("name", "?"),
                        record.get("seconds"),
                        _size(kind, record),
                        "cache",
                    )
                model.runs += 1
                if not record.get("reused"):
                    model.trained_by = f"{cell.cell.name}/seed{run.seed}"
    return list(found.values())


def model_records(run_dir: Path | None) -> list[tuple[str, dict[str, Any]]]:
    """(kind, record) for each model in the run folder's models.json (none without one)."""
    if run_dir is None or not (run_dir / MODELS_FILE).is_file():
        return []
    try:
        by_addon = json.loads((run_dir / MODELS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [
        (kind, record)
        for by_model in by_addon.values()
        if isinstance(by_model, dict)
        for kind, record in by_model.items()
        if isinstance(record, dict)
    ]


def _size(kind: str, record: dict[str, Any]) -> str:
    if kind == "dynamics" and "epochs" in record:
        early = ", stopped early" if record.get("stopped_early") else ""
        return f"{record['epochs']} epochs{early}"
    if kind == "dynamics_reward" and "iterations" in record:
        calibrated = record.get("calibrated", "?")
        return (
            f"{record['iterations']:,} iterations, {record.get('snapshots', '?')} snapshots "
            f"({calibrated} calibrated)"
        )
    return "?"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def model_cost_blocks(study: Study) -> list[Block]:
    """The report's "Learned models" section; nothing for a study without models."""
    models = learned_models(study)
    if not models:
        return []
    body = [
        [
            LABELS.get(m.kind, m.kind),
            m.data,
            _duration(m.seconds),
            m.size,
            str(m.runs),
            m.trained_by,
        ]
        for m in models
    ]
    return [
        ("h", 2, "Learned models"),
        (
            "p",
            "The models the runs stand on, each trained once for its data and settings and "
            "taken from the cache by every later run (models.json in each run folder). "
            "Training time is wall time on the machine that trained it.",
        ),
        ("table", ["model", "data", "training time", "size", "runs", "trained by"], body),
    ]
