"""Paired-by-seed differences: each column of a block minus its arrow baseline, seed by seed.

Runs of one cell and its baseline that share a seed share what the seed draws besides the
method: the target subset (DARA's 1T), the networks' initialisation, the classifiers'
seed. The per-seed difference is then a tighter comparison than two independent means
± std, and it is what the benchmark pages' verdicts quote ("DARA minus its control is
+22.9, +1.6 and +6.9 by seed"). The report adds one table per block (offline studies whose
layout declares arrows).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shiftrl.bench.render import Block
from shiftrl.bench.results import CellResult, Study, grid

PAIRED_STATS = (("final", "final"), ("last3", "last three evaluations"))
"""(statistic, label) compared by seed."""


def seed_differences(cell: CellResult, baseline: CellResult, which: str) -> list[float]:
    """`which` of each seed both cells finished, cell minus baseline, in seed order."""
    mine = {r.seed: v for r in cell.runs if (v := r.value(which)) is not None}
    theirs = {r.seed: v for r in baseline.runs if (v := r.value(which)) is not None}
    return [float(mine[s] - theirs[s]) for s in sorted(mine.keys() & theirs.keys())]


def fmt_differences(diffs: list[float]) -> str:
    """'+7.4 (+2.1, +0.1, +20.0)': the mean of the per-seed differences, then each one."""
    if not diffs:
        return "—"
    each = ", ".join(f"{d:+.1f}" for d in diffs)
    return f"{float(np.mean(diffs)):+.1f} ({each})"


def paired_table(
    block: str,
    rows: list[str],
    cols: list[str],
    cells: Mapping[tuple[str, str, str], CellResult],
    arrows: Mapping[str, str],
    row_header: str = "dataset",
) -> tuple[list[str], list[list[str]]]:
    """A block's paired differences: one line per (row, column with a baseline) where both
    cells have a seed finished in common. Empty body: nothing to pair yet."""
    stats = (f"Δ {label} (per seed)" for _, label in PAIRED_STATS)
    header = [row_header, "column", "minus", *stats]
    body = []
    for row in rows:
        for col in cols:
            base_col = arrows.get(col)
            cell = cells.get((block, row, col))
            base = cells.get((block, row, base_col)) if base_col else None
            if cell is None or base is None:
                continue
            diffs = [seed_differences(cell, base, which) for which, _ in PAIRED_STATS]
            if any(diffs):
                body.append([row, col, str(base_col), *map(fmt_differences, diffs)])
    return header, body


def paired_blocks(study: Study, block: str) -> list[Block]:
    """The block's paired-by-seed differences against the arrows' baselines (if any)."""
    _, rows, cols, cells = grid(study)
    lay = study.layout
    header, body = paired_table(block, rows, cols, cells, lay.arrows, lay.row_header)
    if not body:
        return []
    return [
        ("h", 3, "Paired by seed"),
        (
            "p",
            "Each column minus the column its arrow compares it with, seed by seed (runs "
            "of one seed share the target subset and the networks' initialisation): the "
            "mean of the per-seed differences, then each seed's, over the seeds both "
            "finished.",
        ),
        ("table", header, body),
    ]
