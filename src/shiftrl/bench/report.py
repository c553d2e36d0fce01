"""`shiftrl report DIR`: tables, aggregate metrics and plots from a study folder alone.

Reads `DIR/study.json` (written by `shiftrl bench`: the suite's cells, table layout,
budget and seeds) and every run folder `DIR/<cell>/seed<k>/` (config.json,
metrics.jsonl). Without a study.json, any folder of run folders works: cells are the
folders holding `seed*/config.json`, laid out as rows = target dataset, columns = learner.

Writes `DIR/report.md` (or `report.html`) and `DIR/plots/`: `scores.png` (final score per
cell), `aggregates.png` (IQM / mean / optimality gap with CIs) and `curves/<cell>.png`.
Output depends only on the folder's contents (fixed bootstrap seed, no timestamps).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shiftrl.bench.stats import Interval, stratified_bootstrap
from shiftrl.bench.suites.spec import Budget, Cell, Learner, TableLayout
from shiftrl.core.errors import ConfigError

MISSING = "—"
FORMATS = ("md", "html")


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

    @property
    def finished(self) -> bool:
        return bool(self.steps) and self.steps[-1] >= self.planned_steps

    @property
    def final(self) -> float | None:
        return self.scores[-1] if self.finished else None

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
        vals = [getattr(r, which) for r in self.runs]
        return [float(v) for v in vals if v is not None]

    def stat(self, which: str) -> tuple[float, float] | None:
        v = self.values(which)
        return (float(np.mean(v)), float(np.std(v))) if v else None

    @property
    def n_finished(self) -> int:
        return sum(r.finished for r in self.runs)


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


def _read_run(run_dir: Path, planned_steps: int | None) -> RunResult | None:
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        return None
    meta = json.loads(cfg_path.read_text())
    config = meta["config"]
    rows = _read_rows(run_dir / "metrics.jsonl")
    return RunResult(
        seed=int(config.get("seed", 0)),
        steps=[int(r["step"]) for r in rows],
        scores=[r.get("normalized_score") for r in rows],
        planned_steps=int(planned_steps or config["steps"]),
        version=str(meta.get("shiftrl_version", "")),
    )


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
        rec = json.loads(path.read_text())
        budget = Budget.from_json(rec["budget"])
        cells = []
        for cj in rec["cells"]:
            cell = Cell.from_json(cj)
            runs = [
                r
                for sd in _seed_dirs(d / cell.name)
                if (r := _read_run(sd, budget.steps)) is not None
            ]
            msgs = sorted(
                {
                    v.get("message", "")
                    for k, v in rec.get("jobs", {}).items()
                    if k.split("/")[0] == cell.name
                    and v.get("status") == "failed"
                    and v.get("message")
                }
            )
            cells.append(CellResult(cell, runs, tuple(rec.get("seeds", budget.seeds)), msgs))
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
        )
    return _discover(d)


def _discover(d: Path) -> Study:
    """A folder of run folders without study.json: cells are the folders of `seed*/` runs."""
    cells: dict[Path, CellResult] = {}
    for cfg in sorted(d.rglob("config.json")):
        run_dir = cfg.parent
        run = _read_run(run_dir, None)
        if run is None:
            continue
        cell_dir = run_dir.parent if run_dir.name.startswith("seed") else run_dir
        if cell_dir not in cells:
            conf = json.loads(cfg.read_text())["config"]
            name = cell_dir.relative_to(d).as_posix().replace("/", ".") or d.name
            cell = Cell(
                name=re.sub(r"[^A-Za-z0-9._+=-]", "_", name),
                learner=Learner(conf["algo"], conf.get("preset"), addons=tuple(conf["addons"])),
                target=conf.get("dataset", ""),
                sources=tuple(conf.get("sources", ())),
                eval_envs=tuple(conf.get("eval_envs", ())),
                row=conf.get("dataset", "") or "data",
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


# ---------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------
def _ordered(declared: Sequence[str], seen: Sequence[str]) -> list[str]:
    out = [x for x in declared]
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


def fmt_cell(c: CellResult | None, which: str, baseline: CellResult | None = None) -> str:
    if c is None:
        return MISSING
    s = c.stat(which)
    if s is None:
        return MISSING
    text = f"{s[0]:.1f} ± {s[1]:.1f}"
    if baseline is not None and (b := baseline.stat(which)) is not None and s[0] != b[0]:
        text += " ↑" if s[0] > b[0] else " ↓"
    planned = len(c.planned_seeds)
    if planned and c.n_finished < planned:
        text += f" ({c.n_finished}/{planned})"
    return text


def paper_table(study: Study, block: str, which: str) -> tuple[list[str], list[list[str]]]:
    _, rows, cols, cells = grid(study)
    header = [study.layout.row_header, *cols]
    body = []
    for row in rows:
        if not any((block, row, col) in cells for col in cols):
            continue
        line = [row]
        for col in cols:
            base_col = study.layout.arrows.get(col)
            base = cells.get((block, row, base_col)) if base_col else None
            line.append(fmt_cell(cells.get((block, row, col)), which, base))
        body.append(line)
    return header, body


def aggregates(
    study: Study, which: str, reps: int = 10_000
) -> list[tuple[str, int, int, dict[str, Interval]]]:
    """Per method (block / column): (label, runs, tasks, {metric: Interval}) over rows as tasks."""
    blocks, rows, cols, cells = grid(study)
    out = []
    for block in blocks:
        for col in cols:
            by_task = [
                c.values(which)
                for row in rows
                if (c := cells.get((block, row, col))) is not None and c.values(which)
            ]
            if not by_task:
                continue
            label = f"{block} / {col}" if block else col
            res = stratified_bootstrap(by_task, reps=reps, seed=0)
            out.append((label, sum(len(t) for t in by_task), len(by_task), res))
    return out


# ---------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})


def plot_curve(c: CellResult, path: Path) -> bool:
    runs = [r for r in c.runs if any(s is not None for s in r.scores)]
    if not runs:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for r in runs:
        xs = [x for x, s in zip(r.steps, r.scores, strict=True) if s is not None]
        ys = [s for s in r.scores if s is not None]
        ax.plot(xs, ys, color="0.6", lw=0.8, alpha=0.7)
    common = sorted(set.intersection(*(set(r.steps) for r in runs)))
    if common:
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
        m, sd = np.nanmean(table, axis=0), np.nanstd(table, axis=0)
        ax.plot(common, m, color="C0", lw=2, label=f"mean of {len(runs)} seeds")
        ax.fill_between(common, m - sd, m + sd, color="C0", alpha=0.2, label="± std")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title(c.cell.name, fontsize=9)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("normalized score")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def plot_scores(study: Study, path: Path) -> bool:
    blocks, rows, cols, cells = grid(study)
    blocks = [b for b in blocks if any(k[0] == b and v.values("final") for k, v in cells.items())]
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
                c.stat("final") if (c := cells.get((block, row, col))) is not None else None
                for row in rows
            ]
            best = [
                c.stat("best") if (c := cells.get((block, row, col))) is not None else None
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
            f"{study.layout.title}{' / ' + block if block else ''}: final (bars), best (—)",
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
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 0.5 * len(aggs) + 1.4))
    labels = [a[0] for a in aggs]
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


# ---------------------------------------------------------------------------------------
# The document (rendered to markdown or html)
# ---------------------------------------------------------------------------------------
Block = tuple  # ("h", level, text) | ("p", text) | ("table", header, rows) | ("img", alt, src) | ("code", text)


def build(study: Study, reps: int = 10_000) -> list[Block]:
    doc: list[Block] = []
    title = f"Benchmark report: {study.name}" + (
        f" (profile `{study.profile}`)" if study.profile else ""
    )
    doc.append(("h", 1, title))
    if study.description:
        doc.append(("p", study.description))
    if study.placeholder:
        doc.append(("p", f"**Incomplete suite:** {study.placeholder}."))
    total = sum(len(c.planned_seeds) for c in study.cells)
    done = sum(c.n_finished for c in study.cells)
    facts = []
    if study.budget is not None:
        note = f" ({study.budget.note})" if study.budget.note else ""
        facts.append(f"**Budget:** {study.budget.describe()}{note}.")
    seeds = sorted({s for c in study.cells for s in c.planned_seeds})
    facts.append(f"**Seeds:** {', '.join(map(str, seeds)) or MISSING}.")
    facts.append(f"**Runs finished:** {done} of {total}.")
    versions = sorted({r.version for c in study.cells for r in c.runs if r.version})
    if versions:
        facts.append(f"**shiftrl:** {', '.join(versions)}.")
    doc.append(("p", " ".join(facts)))
    doc.append(
        (
            "p",
            "Scores are normalized returns x100 (random 0, expert 100), averaged over each "
            "run's evaluation environments; cells show mean ± std (population std) over seeds. "
            "*Final* is the score at the last evaluation, *best* the best evaluation of each "
            "run (CORL reports both). (k/n): only k of n seeds finished. "
            f"{MISSING}: no finished run.",
        )
    )
    if study.references:
        doc.append(("p", "Reproduces the layout of: " + "; ".join(study.references) + "."))

    blocks, _, _, _ = grid(study)
    for block in blocks:
        head = study.layout.title + (f": {block}" if block else "")
        doc.append(("h", 2, head))
        if study.layout.note:
            doc.append(("p", study.layout.note))
        for which, label in (("final", "Final score"), ("best", "Best score")):
            doc.append(("h", 3, label))
            header, body = paper_table(study, block, which)
            doc.append(("table", header, body))

    for which in ("final", "best"):
        aggs = aggregates(study, which, reps)
        if not aggs:
            continue
        doc.append(("h", 2, f"Aggregate metrics ({which} score)"))
        doc.append(
            (
                "p",
                "Over the table's rows as tasks: IQM (mean of the middle 50% of runs), mean, "
                "and optimality gap (mean shortfall below 100), with 95% stratified bootstrap "
                f"confidence intervals ({reps:,} resamples, percentile method; rliable's "
                "definitions, computed by `shiftrl.bench.stats`).",
            )
        )
        doc.append(
            (
                "table",
                ["method", "runs", "tasks", "IQM", "mean", "optimality gap"],
                [
                    [
                        label,
                        str(n),
                        str(t),
                        *(res[k].fmt() for k in ("IQM", "mean", "optimality gap")),
                    ]
                    for label, n, t, res in aggs
                ],
            )
        )
        if which == "final" and plot_aggregates(aggs, study.dir / "plots" / "aggregates.png"):
            doc.append(("img", "aggregate metrics", "plots/aggregates.png"))

    doc.append(("h", 2, "Score chart"))
    if plot_scores(study, study.dir / "plots" / "scores.png"):
        doc.append(("img", "final score per cell", "plots/scores.png"))
    else:
        doc.append(("p", "No finished runs yet."))

    doc.append(("h", 2, "All cells"))
    body = []
    for c in study.cells:
        lr = c.cell.learner
        learner = lr.algo + (f" ({lr.preset})" if lr.preset else "")
        learner += "".join(f" + {a['name']}" for a in lr.addons)
        status = "; ".join(c.messages) if c.messages else ""
        if not status:
            running = [r for r in c.runs if not r.finished]
            status = (
                f"unfinished: {', '.join(f'seed{r.seed} @ {r.steps[-1] if r.steps else 0}' for r in running)}"
                if running
                else ("ok" if c.n_finished else "not run")
            )
        body.append(
            [
                c.cell.name,
                learner,
                c.cell.data_label,
                ", ".join(c.cell.eval_envs) or "(dataset's env)",
                f"{c.n_finished}/{len(c.planned_seeds)}",
                fmt_cell(c, "final"),
                fmt_cell(c, "best"),
                status,
            ]
        )
    doc.append(
        (
            "table",
            ["cell", "learner", "data", "eval envs", "seeds", "final", "best", "status"],
            body,
        )
    )

    doc.append(("h", 2, "Learning curves"))
    doc.append(("p", "Mean ± std over seeds at common evaluation steps; grey: single seeds."))
    for c in study.cells:
        rel = f"plots/curves/{c.cell.name}.png"
        if plot_curve(c, study.dir / rel):
            doc.append(("img", c.cell.name, rel))

    if study.profile:
        doc.append(("h", 2, "Reproduce"))
        doc.append(
            (
                "code",
                f"shiftrl bench {study.name} --profile {study.profile} --out {study.dir.name}\n"
                f"shiftrl report {study.dir.name}",
            )
        )
    return doc


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(doc: list[Block]) -> str:
    out: list[str] = []
    for b in doc:
        kind = b[0]
        if kind == "h":
            out.append(f"{'#' * b[1]} {b[2]}")
        elif kind == "p":
            out.append(b[1])
        elif kind == "table":
            header, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(_md_escape(x) for x in r) + " |" for r in rows]
        elif kind == "img":
            out.append(f"![{b[1]}]({b[2]})")
        elif kind == "code":
            out.append(f"```bash\n{b[1]}\n```")
        out.append("")
    return "\n".join(out)


def _inline_md(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"\*(.+?)\*", r"<i>\1</i>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def to_html(doc: list[Block], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
    ]
    for b in doc:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline_md(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline_md(b[1])}</p>")
        elif kind == "table":
            out.append(
                "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b[1]) + "</tr>"
            )
            for r in b[2]:
                out.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>")
            out.append("</table>")
        elif kind == "img":
            out.append(f'<p><img src="{html.escape(b[2])}" alt="{html.escape(b[1])}"></p>')
        elif kind == "code":
            out.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(study_dir: str | Path, fmt: str = "md", reps: int = 10_000) -> Path:
    """Write DIR/report.md (or .html) and DIR/plots/; returns the report's path."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format '{fmt}'; available: {', '.join(FORMATS)}")
    study = load_study(study_dir)
    doc = build(study, reps)
    path = study.dir / f"report.{fmt}"
    text = to_markdown(doc) if fmt == "md" else to_html(doc, doc[0][2])
    path.write_text(text)
    return path
