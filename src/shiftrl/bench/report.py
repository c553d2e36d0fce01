"""`shiftrl report DIR`: tables, aggregate metrics and plots from a study folder alone.

Reads `DIR/study.json` (written by `shiftrl bench`: the suite's cells, table layout,
budget and seeds) and every run folder `DIR/<cell>/seed<k>/` (config.json,
metrics.jsonl). Without a study.json, any folder of run folders works: cells are the
folders holding `seed*/config.json`, laid out as rows = target dataset, columns = learner.

Offline studies get, per block of the paper's table, the final score, the mean of each run's
last three evaluations and the best score, mean ± std over seeds; then, where the layout's
arrows name a baseline column, each column minus it seed by seed (`bench.paired`).

Writes `DIR/report.md` (or `report.html`) and `DIR/plots/`: `scores.png` (final score per
cell), `aggregates.png` (IQM / mean / optimality gap with CIs, over the tasks all methods
of a block finished) and `curves/<cell>.png`.
Output depends only on the folder's contents (fixed bootstrap seed, no timestamps).
The plots are drawn by `bench.plots`, the document rendered by `bench.render`.

Offline-to-online studies (cells with an online phase, whose runs hold `online/`): the
tables show offline score -> online score per cell (CORL's offline-to-online layout) and
the regret (mean over online evaluations of 1 - score / 100; lower is better); the
aggregates are over offline and over online final scores; `online/<cell>.png` are the
online learning curves.

Per-environment tables: a suite whose layout names `per_env_tables` ({label: env ids},
e.g. SRPO's "base dynamics only") gets, in each block after the main tables, the same
tables again with every cell scored in those environments alone (the runs' logged
`eval/<env>/normalized_score`, mean over the listed envs a cell was evaluated in) instead
of the mean over all its evaluation environments; cells evaluated in none of them show
"—". Aggregates and plots stay on the main score. (Offline studies only.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from shiftrl.bench.model_costs import model_cost_blocks
from shiftrl.bench.paired import paired_blocks
from shiftrl.bench.plots import plot_aggregates, plot_curves, plot_scores
from shiftrl.bench.render import Block, to_html, to_markdown
from shiftrl.bench.results import CellResult, RunResult, Study, grid, load_study
from shiftrl.bench.stats import Interval, stratified_bootstrap
from shiftrl.core.errors import ConfigError

MISSING = "—"
FORMATS = ("md", "html")


# ---------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------
SCORE_TABLES = (
    ("final", "Final score"),
    ("last3", "Last three evaluations"),
    ("best", "Best score"),
)
"""The per-block tables of an offline study: statistic, heading."""


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


def _block_columns(block: str, rows: list[str], cols: list[str], cells: dict) -> list[str]:
    """The columns with a cell in this block (blocks may hold different methods)."""
    return [col for col in cols if any((block, row, col) in cells for row in rows)]


def paper_table(study: Study, block: str, which: str) -> tuple[list[str], list[list[str]]]:
    _, rows, cols, cells = grid(study)
    cols = _block_columns(block, rows, cols, cells)
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


def fmt_o2o(c: CellResult | None) -> str:
    """'offline mean ± std → online mean ± std' (CORL's offline-to-online cell)."""
    if c is None:
        return MISSING
    off, on = c.stat("final"), c.stat("online")
    if off is None and on is None:
        return MISSING
    text = " → ".join(MISSING if s is None else f"{s[0]:.1f} ± {s[1]:.1f}" for s in (off, on))
    planned = len(c.planned_seeds)
    if planned and c.n_finished < planned:
        text += f" ({c.n_finished}/{planned})"
    return text


def o2o_table(study: Study, block: str, which: str) -> tuple[list[str], list[list[str]]]:
    """The offline-to-online table of a block: `which` = 'o2o' (offline → online) or 'regret'."""
    _, rows, cols, cells = grid(study)
    cols = _block_columns(block, rows, cols, cells)
    body = []
    for row in rows:
        if not any((block, row, col) in cells for col in cols):
            continue
        line = [row]
        for col in cols:
            c = cells.get((block, row, col))
            if which == "o2o":
                line.append(fmt_o2o(c))
            elif c is None or (s := c.stat("regret")) is None:
                line.append(MISSING)
            else:
                line.append(f"{s[0]:.3f} ± {s[1]:.3f}")
        body.append(line)
    return [study.layout.row_header, *cols], body


def _task_values(study: Study, which: str) -> dict[tuple[str, str], dict[str, list[float]]]:
    """{(block, column): {row: per-seed values}} for every method with a finished run."""
    blocks, rows, cols, cells = grid(study)
    out = {}
    for block in blocks:
        for col in cols:
            by_row = {
                row: c.values(which)
                for row in rows
                if (c := cells.get((block, row, col))) is not None and c.values(which)
            }
            if by_row:
                out[(block, col)] = by_row
    return out


def _common_rows(methods: dict[tuple[str, str], dict[str, list[float]]]) -> dict[str, list[str]]:
    """Per block, the rows every method of the block finished (in table order)."""
    out: dict[str, list[str]] = {}
    for (block, _), by_row in methods.items():
        out[block] = [r for r in out.get(block, list(by_row)) if r in by_row]
    return out


def _bootstrap(
    methods, reps: int, keep: dict[str, list[str]] | None = None
) -> list[tuple[str, int, int, dict[str, Interval]]]:
    """Per method (block / column): (label, runs, tasks, {metric: Interval}) over its rows
    as tasks, only the rows in `keep[block]` when given."""
    out = []
    for (block, col), by_row in methods.items():
        by_task = [v for row, v in by_row.items() if keep is None or row in keep[block]]
        if not by_task:
            continue
        label = f"{block} / {col}" if block else col
        res = stratified_bootstrap(by_task, reps=reps, seed=0)
        out.append((label, sum(len(t) for t in by_task), len(by_task), res))
    return out


# ---------------------------------------------------------------------------------------
# The document (rendered to markdown or html by bench.render)
# ---------------------------------------------------------------------------------------
def _budget_text(study: Study, o2o: bool) -> str:
    """The budget line with the profile's note; online-only cells (trained online from
    scratch) get their own steps, and a study of nothing else quotes neither the offline
    budget it never ran nor the note about it."""
    budget = study.budget
    assert budget is not None
    offline = budget.describe(with_online=o2o)
    note = f" ({budget.note})" if budget.note else ""
    online_only = [c.cell for c in study.cells if c.cell.online_only]
    if not online_only:
        return offline + note
    o = budget.online
    steps = ", ".join(
        f"{cell.online.env} {o.online_steps(cell.online):,}"
        for cell in {c.online.env: c for c in online_only}.values()
    )
    text = (
        f"online from scratch, environment steps per job: {steps}; evaluation every "
        f"{o.eval_every:,} steps with {o.eval_episodes} episodes in each of the env's dynamics"
    )
    if len(online_only) == len(study.cells):
        return text
    return f"{offline}; online-only cells: {text}{note}"


def build(study: Study, reps: int = 10_000) -> list[Block]:
    doc: list[Block] = []
    o2o = study.online
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
        facts.append(f"**Budget:** {_budget_text(study, o2o)}.")
    seeds = sorted({s for c in study.cells for s in c.planned_seeds})
    facts.append(f"**Seeds:** {', '.join(map(str, seeds)) or MISSING}.")
    facts.append(f"**Runs finished:** {done} of {total}.")
    if study.unselected:
        facts.append(
            f"**Cells:** {len(study.cells)} of the suite's {len(study.cells) + study.unselected}"
            " (the study was run on a selection, `shiftrl bench --only`)."
        )
    versions = sorted({r.version for c in study.cells for r in c.runs if r.version})
    if versions:
        facts.append(f"**shiftrl:** {', '.join(versions)}.")
    doc.append(("p", " ".join(facts)))
    if o2o:
        doc.append(
            (
                "p",
                "Scores are normalized returns x100 (random 0, expert 100). Each job trains "
                "offline, then fine-tunes online (in the cell's online environment). "
                "*Offline → online*: the offline run's score at its last evaluation → the "
                "online phase's score at its last evaluation, each mean ± std (population "
                "std) over seeds, as CORL's offline-to-online tables. *Regret*: the mean over "
                "the online evaluations of 1 - score / 100 (CORL's definition; lower is "
                "better). (k/n): only k of n seeds finished both phases. "
                f"{MISSING}: no finished run.",
            )
        )
    else:
        doc.append(
            (
                "p",
                "Scores are normalized returns x100 (random 0, expert 100), averaged over "
                "each run's evaluation environments; cells show mean ± std (population std) "
                "over seeds. *Final* is the score at the last evaluation, *best* the best "
                "evaluation of each run (CORL reports both), *last three evaluations* each "
                "run's mean over its last three (less at the mercy of one evaluation). "
                f"(k/n): only k of n seeds finished. {MISSING}: no finished run.",
            )
        )
    if study.references:
        doc.append(("p", "Reproduces the layout of: " + "; ".join(study.references) + "."))

    blocks, _, _, _ = grid(study)
    per_env = {label: (envs, study.in_envs(envs)) for label, envs in study.per_env_tables.items()}
    for block in blocks:
        doc.append(("h", 2, study.layout.heading(block)))
        if study.layout.note:
            doc.append(("p", study.layout.note))
        if o2o:
            for which, label in (("o2o", "Offline → online score"), ("regret", "Regret")):
                doc.append(("h", 3, label))
                header, body = o2o_table(study, block, which)
                doc.append(("table", header, body))
            continue
        for which, label in SCORE_TABLES:
            doc.append(("h", 3, label))
            header, body = paper_table(study, block, which)
            doc.append(("table", header, body))
        doc.extend(paired_blocks(study, block))
        for env_label, (envs, scoped) in per_env.items():
            if not any(
                set(c.cell.eval_envs) & set(envs) for c in study.cells if c.cell.block == block
            ):
                continue  # no cell of this block is evaluated in those envs
            for which, label in SCORE_TABLES:
                doc.append(("h", 3, f"{label} ({env_label})"))
                where = ", ".join(f"`{e}`" for e in envs)
                doc.append(
                    (
                        "p",
                        f"Normalized score in {where} alone (those a cell is evaluated in), "
                        "not the mean over all of its evaluation environments.",
                    )
                )
                header, body = paper_table(scoped, block, which)
                doc.append(("table", header, body))

    doc.extend(model_cost_blocks(study))

    kinds = (("final", "offline final score"), ("online", "online final score"))
    if not o2o:
        kinds = (("final", "final score"), ("best", "best score"))
    for which, label in kinds:
        doc.extend(_aggregate_blocks(study, which, label, reps))

    doc.append(("h", 2, "Score chart"))
    chart = (
        {"bar": "online", "mark": "final", "caption": "online final (bars), offline final (—)"}
        if o2o
        else {}
    )
    if plot_scores(study, study.dir / "plots" / "scores.png", **chart):
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
            running = [_progress(r) for r in c.runs if not r.complete]
            status = (
                f"unfinished: {', '.join(running)}"
                if running
                else ("ok" if c.n_finished else "not run")
            )
        line = [
            c.cell.name,
            learner,
            c.cell.data_label,
            ", ".join(c.cell.eval_envs)
            or ("every dynamics of the env" if c.cell.online_only else "(dataset's env)"),
        ]
        if o2o:
            online = c.cell.online
            line.append(
                online.env or (c.cell.eval_envs or ("(dataset's env)",))[0] if online else ""
            )
        line += [f"{c.n_finished}/{len(c.planned_seeds)}", fmt_cell(c, "final")]
        if o2o:
            line += [fmt_cell(c, "online"), o2o_regret(c)]
        else:
            line.append(fmt_cell(c, "best"))
        body.append([*line, status])
    header = ["cell", "learner", "data", "eval envs"]
    if o2o:
        header += ["online env", "seeds", "offline", "online", "regret"]
    else:
        header += ["seeds", "final", "best"]
    doc.append(("table", [*header, "status"], body))

    blocks, _, _, _ = grid(study)
    phases = [(False, "Learning curves", "curves")]
    if o2o:
        phases.append((True, "Online learning curves", "online"))
    for online, title, folder in phases:
        doc.append(("h", 2, title))
        doc.append(
            (
                "p",
                "One panel per row of the tables, the methods overlaid: mean over seeds at "
                "their common evaluation steps, shaded ± std"
                + (
                    "; over online environment steps, dashed: each method's offline final "
                    "score (mean)."
                    if online
                    else "."
                ),
            )
        )
        for block in blocks:
            name = re.sub(r"[^A-Za-z0-9._+=-]+", "_", block).strip("_") or "all"
            rel = f"plots/{folder}/{name}.png"
            if plot_curves(study, study.dir / rel, block, online=online):
                doc.append(("img", f"{title}: {block}" if block else title, rel))

    if study.profile:
        doc.append(("h", 2, "Reproduce"))
        doc.append(("code", reproduce_command(study)))
    return doc


def reproduce_command(study: Study) -> str:
    """The commands that make this study again: its folder as given to `report`, and, for a
    study run on a selection, its cells (`--only`) and seeds."""
    folder = shlex.quote(str(study.dir))
    line = f"shiftrl bench {study.name} --profile {study.profile} --out {folder}"
    seeds = sorted({s for c in study.cells for s in c.planned_seeds})
    if study.budget is not None and seeds and seeds != sorted(study.budget.seeds):
        line += f" --seeds {','.join(map(str, seeds))}"
    if study.unselected:
        line += " --only " + shlex.quote(",".join(c.cell.name for c in study.cells))
    return f"{line}\nshiftrl report {folder}"


def _aggregate_blocks(study: Study, which: str, label: str, reps: int) -> list[Block]:
    """The aggregate tables of one score kind: over the tasks all methods share, then (when
    the methods' task sets differ) over each method's own tasks, marked as no comparison."""
    methods = _task_values(study, which)
    if not methods:
        return []
    shared = _common_rows(methods)
    # methods that finished more tasks than all of their block's methods share
    wider = {k: v for k, v in methods.items() if len(v) > len(shared[k[0]])}
    what = (
        "IQM (mean of the middle 50% of runs), mean, and optimality gap (mean shortfall "
        f"below 100), with 95% stratified bootstrap confidence intervals ({reps:,} "
        "resamples, percentile method; rliable's definitions, computed by "
        "`shiftrl.bench.stats`)."
    )
    intro = "Over the table's rows as tasks: "
    if wider:
        listed = "; ".join(
            (f"{b}: " if b else "") + (", ".join(rows) if rows else "none")
            for b, rows in shared.items()
        )
        intro = (
            "Over the tasks every method of the table finished, so the methods are "
            f"compared on the same tasks ({listed}): "
        )
    tables = [(_bootstrap(methods, reps, shared), intro + what)]
    if wider:
        tables.append(
            (
                _bootstrap(wider, reps),
                "The methods that finished more tasks than those, each over all the tasks it "
                "finished. Their task sets differ, so these rows are no comparison between "
                "methods.",
            )
        )
    doc: list[Block] = [("h", 2, f"Aggregate metrics ({label})")]
    for i, (aggs, text) in enumerate(tables):
        if i:
            doc.append(("h", 3, "Over each method's own tasks"))
        doc.append(("p", text))
        if aggs:
            doc.append(("table", AGG_HEADER, [_agg_row(a) for a in aggs]))
        if few := [a for a in aggs if a[1] < FEW_RUNS]:
            doc.append(("p", _few_runs_warning(few)))
        if i == 0 and which in ("final", "online"):
            name = "aggregates.png" if which == "final" else f"aggregates-{which}.png"
            if plot_aggregates(aggs, study.dir / "plots" / name):
                doc.append(("img", f"aggregate metrics ({label})", f"plots/{name}"))
    return doc


AGG_HEADER = ["method", "runs", "tasks", "IQM", "mean", "optimality gap"]
FEW_RUNS = 5
"""Below this many runs a bootstrap interval says little: resampling n runs gives few
distinct values (2 runs on 1 task: three), so the interval is narrow for want of data."""


def _few_runs_warning(few: list) -> str:
    named = ", ".join(f"{a[0]} ({a[1]} run{'s' if a[1] != 1 else ''})" for a in few[:4])
    more = f" and {len(few) - 4} more" if len(few) > 4 else ""
    return (
        f"**Few runs:** the intervals of {named}{more} rest on fewer than {FEW_RUNS} runs: a "
        "bootstrap over so few draws is narrow for want of data, not because the score is "
        "certain. Run more seeds (`--seeds 0-4`) or tasks before comparing them."
    )


def _agg_row(agg: tuple[str, int, int, dict[str, Interval]]) -> list[str]:
    label, n, t, res = agg
    return [label, str(n), str(t), *(res[k].fmt() for k in ("IQM", "mean", "optimality gap"))]


def o2o_regret(c: CellResult) -> str:
    s = c.stat("regret")
    return MISSING if s is None else f"{s[0]:.3f} ± {s[1]:.3f}"


def _progress(r: RunResult) -> str:
    """'seed0 @ 500' (offline) or 'seed0 online @ 2000' for an unfinished run."""
    if r.finished and r.planned_online is not None:
        at = r.online.steps[-1] if r.online is not None and r.online.steps else 0
        return f"seed{r.seed} online @ {at}"
    return f"seed{r.seed} @ {r.steps[-1] if r.steps else 0}"


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
