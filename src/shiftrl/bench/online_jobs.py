"""Online-only benchmark jobs: a context learner trained from scratch in an environment.

A cell whose online phase has `from_scratch=True` (the `srpo` suite's online block: context
SAC with and without SRPO on dynamics-randomized envs) has no dataset and no offline phase:
its job is one `shiftrl.training.context_run.train_online` run into the job's folder
(`<study>/<cell>/seed<k>`), at the budget's online steps, collection burst and evaluation
schedule (`Budget.online`), with the cell learner's overrides and add-ons (the budget's
`addon_settings` applied). It resumes from its last checkpoint like every job, and is
finished when its metrics hold a row at the final step and that step's checkpoint exists.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


def is_online_only(job: dict[str, Any]) -> bool:
    return bool((job["cell"].get("online") or {}).get("from_scratch"))


def online_steps(job: dict[str, Any]) -> int:
    from shiftrl.bench.suites.spec import Budget, Cell

    cell, budget = Cell.from_json(job["cell"]), Budget.from_json(job["budget"])
    return budget.online.online_steps(cell.online)


def run_settings(job: dict[str, Any]) -> dict[str, Any]:
    """The `train_online` arguments of an online-only job (checked when the jobs are planned:
    unknown settings or add-ons fail there)."""
    from shiftrl.bench.suites.spec import Budget, Cell
    from shiftrl.core.errors import ConfigError

    cell, budget = Cell.from_json(job["cell"]), Budget.from_json(job["budget"])
    ob, steps = budget.online, online_steps(job)
    if steps % ob.steps_per_iter or ob.eval_every % ob.steps_per_iter:
        raise ConfigError(
            f"online steps ({steps:,}) and online eval_every ({ob.eval_every:,}) must be "
            f"multiples of steps_per_iter ({ob.steps_per_iter:,})"
        )
    addons = [dict(a) for a in cell.learner.addons]
    for record in addons:
        record.update(budget.addon_settings.get(record.get("name"), {}))
    overrides = {
        "steps_per_iter": ob.steps_per_iter,
        "eval_every": ob.eval_every,
        "eval_episodes": ob.eval_episodes,
        "checkpoint_every": ob.eval_every,
        **dict(cell.learner.overrides),
    }
    return {
        "algo": cell.learner.algo,
        "env": cell.online.env,
        "steps": steps,
        "seed": int(job["seed"]),
        "preset": cell.learner.preset,
        "addons": tuple(addons),
        "overrides": overrides,
    }


def check_job(job: dict[str, Any]) -> None:
    """Build the job's learner, run settings and add-ons (no arrays): a bad setting fails
    when the jobs are planned."""
    from shiftrl.training.context_run import build_run

    kw = run_settings(job)
    build_run(
        kw["algo"],
        kw["env"],
        steps=kw["steps"],
        seed=kw["seed"],
        preset=kw["preset"],
        addons=kw["addons"],
        overrides=kw["overrides"],
    )


def run_online_job(
    job: dict[str, Any], study_dir: str, post: Callable[[Any], None] = lambda e: None
) -> dict[str, Any]:
    """`worker.run_job` for an online-only job: same result record, never raises."""
    from shiftrl.bench.worker import _one_line, _output_to, finished_scores, is_finished
    from shiftrl.training.context_run import train_online

    run_dir = Path(study_dir) / job["dir"]
    log_path = Path(study_dir) / "logs" / f"{job['dir']}.log"
    result: dict[str, Any] = {"id": job["id"], "final": None, "best": None, "message": ""}
    t0 = time.perf_counter()
    try:
        steps = online_steps(job)
        if is_finished(run_dir, steps):
            return {**result, **finished_scores(run_dir), "status": "skipped", "seconds": 0.0}
        kw = run_settings(job)
    except Exception as e:
        return {**result, "status": "failed", "message": _one_line(e), "seconds": 0.0}
    start = resume_step(run_dir)
    post(("start", job["id"], {"resumed_from": start, "pid": os.getpid()}))

    def on_eval(row: dict) -> None:
        post(("eval", job["id"], {"step": row["step"], "score": row.get("normalized_score")}))

    try:
        with _output_to(log_path):
            print(f"== {job['id']} (online, {'resume from ' + str(start) if start else 'fresh'})")
            algo, env = kw.pop("algo"), kw.pop("env")
            train_online(
                algo, env, run_dir, **kw, resume=True, progress="plain", callbacks=(on_eval,)
            )
        result.update(finished_scores(run_dir), status="done")
    except Exception as e:  # one job's failure never stops the sweep
        result.update(status="failed", message=_one_line(e))
        with open(log_path, "a") as log:
            log.write(traceback.format_exc())
    result["resumed_from"] = start
    result["seconds"] = time.perf_counter() - t0
    return result


def resume_step(run_dir: Path) -> int:
    from shiftrl.training.checkpoint import latest

    path = latest(run_dir) if (run_dir / "config.json").exists() else None
    return int(path.stem.split("_")[-1]) if path is not None else 0
