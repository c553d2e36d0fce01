"""`shiftrl bench --vmap-seeds N`: a cell's seeds trained as one vmapped program.

On an accelerator one program advancing N seeds costs about the wall-clock of one, so a
sweep's seeds need not each hold the device. The runner groups the unfinished jobs of one
cell (up to N, all at the same resume step) into one call; the worker trains them with
`train_seeds` into the same `<cell>/seed<k>` run folders the single jobs write, so
skipping, resuming and reports are unchanged. Cells whose seeds do not share data (a
target subset drawn per seed) and offline-to-online cells still run one job per seed.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shiftrl.bench.worker import (
    Event,
    _check_recorded,
    _one_line,
    _output_to,
    load_job_data,
    resume_step,
)


def groupable(job: dict[str, Any]) -> bool:
    """Seeds of this job's cell can share one program: same data, no online phase."""
    cell = job["cell"]
    return (
        not cell.get("online")
        and cell.get("target_fraction") is None
        and cell.get("target_count") is None
    )


def plan_calls(jobs: list[dict[str, Any]], size: int, study_dir: Path) -> list[tuple]:
    """Worker calls for `jobs`: ("group", [jobs]) for up to `size` seeds of one cell at the
    same resume step, ("job", job) for the rest; cells keep their planned order."""
    if size < 2:
        return [("job", j) for j in jobs]
    buckets: dict[tuple, list[dict[str, Any]]] = {}
    for j in jobs:
        key = (
            (j["cell"]["name"], resume_step(Path(study_dir) / j["dir"]))
            if groupable(j)
            else (j["id"], None)
        )
        buckets.setdefault(key, []).append(j)
    calls: list[tuple] = []
    for members in buckets.values():
        for i in range(0, len(members), size):
            part = members[i : i + size]
            calls.append(("group", part) if len(part) > 1 else ("job", part[0]))
    return calls


def run_group(
    jobs: list[dict[str, Any]], study_dir: str, post: Callable[[Event], None] = lambda e: None
) -> dict[str, Any]:
    """Train one cell's seeds together (`train_seeds`); {"group": [a `run_job` result per
    job]}. Output goes to the first job's log; the others' logs point there."""
    from shiftrl.training.run import train_seeds

    study = Path(study_dir)
    run_dirs = [study / j["dir"] for j in jobs]
    logs = [study / "logs" / f"{j['dir']}.log" for j in jobs]
    starts = [resume_step(d) for d in run_dirs]
    seeds = [int(j["seed"]) for j in jobs]
    results = [{"id": j["id"], "final": None, "best": None, "message": ""} for j in jobs]
    t0 = time.perf_counter()
    for j, s in zip(jobs, starts, strict=True):
        post(("start", j["id"], {"resumed_from": s, "pid": os.getpid()}))
    for log in logs[1:]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"== trained with seeds {seeds} as one vmapped program: see {logs[0].name}\n")
    by_seed = {int(j["seed"]): j["id"] for j in jobs}

    def on_eval(row: dict) -> None:
        payload = {"step": row["step"], "score": row.get("normalized_score")}
        post(("eval", by_seed[row["seed"]], payload))

    try:
        with _output_to(logs[0]):
            ids = ", ".join(j["id"] for j in jobs)
            print(
                f"== {ids}: one vmapped program ({'resume from step ' + str(starts[0]) if starts[0] else 'fresh'})"
            )
            configs = [_check_recorded(j, d) for j, d in zip(jobs, run_dirs, strict=True)]
            target, sources = load_job_data(jobs[0])
            runs = train_seeds(
                configs[0],
                target,
                sources,
                seeds,
                out=run_dirs[0].parent,
                resume=True,
                progress=False,
                callbacks=(on_eval,),
            )
        for res, run in zip(results, runs, strict=True):
            res.update(status="done", final=run.score("final"), best=run.score("best"))
    except Exception as e:  # the group's failure never stops the sweep
        for res in results:
            res.update(status="failed", message=_one_line(e))
        with open(logs[0], "a") as log:
            log.write(traceback.format_exc())
    seconds = time.perf_counter() - t0
    for res, s in zip(results, starts, strict=True):
        res.update(resumed_from=s, seconds=seconds)
    return {"group": results}
