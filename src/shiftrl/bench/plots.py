"""Plots for `shiftrl report`: learning curves (one axis per row, the methods overlaid),\nper-cell score bars and aggregate metrics.

matplotlib is imported on first use (Agg backend); each function writes one PNG and
returns False when there is nothing to draw.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shiftrl.bench.results import grid

if TYPE_CHECKING:
    from shiftrl.bench.results import CellResult, Study


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})


def _curve_runs(c: CellResult, online: bool) -> list:
    phases = [r.online for r in c.runs if r.online is not None] if online else list(c.runs)
    return [r for r in phases if any(s is not None for s in r.scores)]


def _mean_curve(runs: list) -> tuple[list, np.ndarray, np.ndarray] | None:
    """Mean and std over seeds at the evaluation steps all runs share."""
    common = sorted(set.intersection(*(set(r.steps) for r in runs)))
    if not common:
        return None
    table = np.array(
        [
            [
                np.nan if (v := dict(zip(r.steps, r.scores, strict=True))[s]) is None else v
                for s in common
            ]
            for r in runs
        ],
        float,
    )
    return common, np.nanmean(table, axis=0), np.nanstd(table, axis=0)


def plot_curves(study: Study, path: Path, block: str = "", online: bool = False) -> bool:
    """Learning curves of one block: one axis per row (dataset / task), the columns
    (methods) overlaid on it, each its mean over seeds with a ± std band; a legend of the
    methods drawn. Online: the online phases, the offline final score dashed."""

    _, rows, cols, cells = grid(study)
    panels, env_steps = [], online
    for row in rows:
        lines = []
        for j, col in enumerate(cols):
            c = cells.get((block, row, col))
            env_steps |= c is not None and c.cell.online_only  # its runs log environment steps
            runs = _curve_runs(c, online) if c is not None else []
            if runs and (curve := _mean_curve(runs)) is not None:
                lines.append((j, col, len(runs), curve, c.stat("final") if online else None))
        if lines:
            panels.append((row, lines))
    if not panels:
        return False
    plt = _plt()
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows + 0.6), squeeze=False)
    drawn: dict[str, object] = {}
    for ax, (row, lines) in zip(axes.flat, panels, strict=False):
        for j, col, n, (steps, m, sd), offline in lines:
            (line,) = ax.plot(steps, m, color=f"C{j % 10}", lw=1.8)
            ax.fill_between(steps, m - sd, m + sd, color=f"C{j % 10}", alpha=0.15)
            drawn.setdefault(f"{col} ({n} seeds)" if n != 1 else f"{col} (1 seed)", line)
            if offline is not None:
                ax.axhline(offline[0], color=f"C{j % 10}", ls="--", lw=0.8)
        ax.set_title(row, fontsize=9)
        ax.set_xlabel("online environment steps" if env_steps else "gradient steps", fontsize=8)
        ax.set_ylabel("normalized score", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    # as many legend columns as the labels' width allows (8-pt text is ~0.075 in a
    # character, plus the line handle): a single row of long labels ran off the figure
    width, height = fig.get_size_inches()
    entry = 0.075 * max(len(label) for label in drawn) + 0.6
    ncol = max(1, min(len(drawn), int(width // entry)))
    legend_rows = -(-len(drawn) // ncol)
    fig.legend(
        list(drawn.values()),
        list(drawn),
        loc="lower center",
        ncol=ncol,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, min(0.45, (0.2 * legend_rows + 0.1) / height), 1, 1))
    _save(fig, path)
    plt.close(fig)
    return True


def plot_scores(
    study: Study, path: Path, bar: str = "final", mark: str = "best", caption: str = ""
) -> bool:
    """Bars of `bar` scores (mean ± std) per cell with `mark` scores as marks."""
    caption = caption or "final (bars), best (—)"

    blocks, rows, cols, cells = grid(study)
    blocks = [b for b in blocks if any(k[0] == b and v.values(bar) for k, v in cells.items())]
    if not blocks:
        return False
    plt = _plt()
    fig, axes = plt.subplots(
        len(blocks),
        1,
        figsize=(max(6.0, 0.9 * len(rows) * max(1, len(cols)) / 2), 3.6 * len(blocks)),
    )
    axes = np.atleast_1d(axes)
    width = 0.8 / max(1, len(cols))
    for ax, block in zip(axes, blocks, strict=True):
        x = np.arange(len(rows))
        for j, col in enumerate(cols):
            stats = [
                c.stat(bar) if (c := cells.get((block, row, col))) is not None else None
                for row in rows
            ]
            if not any(stats):  # no bar for this method here: not in the legend either
                continue
            best = [
                c.stat(mark) if (c := cells.get((block, row, col))) is not None else None
                for row in rows
            ]
            pos = x - 0.4 + width * (j + 0.5)
            ax.bar(
                pos,
                [s[0] if s else np.nan for s in stats],  # missing cells: no bar
                width,
                yerr=[s[1] if s else np.nan for s in stats],
                label=col,
                color=f"C{j}",
                capsize=2,
            )
            ax.scatter(
                [p for p, b in zip(pos, best, strict=True) if b],
                [b[0] for b in best if b],
                marker="_",
                color="k",
                s=60,
                zorder=3,
            )
        ax.set_xticks(x, rows, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel("normalized score")
        ax.set_title(
            f"{study.layout.title}{' / ' + block if block else ''}: {caption}",
            fontsize=9,
        )
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def plot_aggregates(aggs: list, path: Path) -> bool:
    if not aggs:
        return False
    plt = _plt()
    metrics = list(aggs[0][3])
    # "block / method" labels can be long: wrapped, so they do not squeeze the panels
    labels = ["\n".join(textwrap.wrap(a[0], 36)) for a in aggs]
    lines = sum(label.count("\n") + 1 for label in labels)
    height = max(0.5 * len(aggs), 0.3 * lines) + 1.4
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), height))
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        for i, a in enumerate(aggs):
            iv = a[3][metric]
            ax.plot([iv.low, iv.high], [i, i], color=f"C{i % 10}", lw=6, alpha=0.6)
            ax.plot([iv.point], [i], "k|", ms=12)
        ax.set_yticks(range(len(aggs)), labels if metric == metrics[0] else [""] * len(aggs))
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("normalized score")
        ax.grid(axis="x", alpha=0.3)
        ax.invert_yaxis()  # first method on top, as in the tables
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True
