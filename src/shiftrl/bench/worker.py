"""One benchmark job in a worker process (a pool process or a Ray task).

Kept free of JAX imports at module level: `limit_threads` (`threads.py`) must set the
environment before XLA's CPU client starts, so N single-threaded jobs share N cores.

Jobs also share JAX's persistent compilation cache (`$SHIFTRL_JAX_CACHE`, default
~/.cache/shiftrl/jax; `off` disables it): a job whose learner and shapes were compiled
before skips compilation (a smoke job: ~39 s -> ~10 s on the loaded 2-core machine).

An offline-to-online job (a cell with an `online` phase) trains offline into its run folder,
then fine-tunes online into `<run folder>/online` (`shiftrl.training.finetune.finetune`).
Each phase is skipped once finished: the offline one when its metrics have the final step,
the online one when `online/finetune.json` exists; an interrupted online phase resumes
from its last checkpoint (`finetune(..., resume=True)`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shiftrl.bench.threads import limit_threads

Event = tuple  # ("start" | "eval", job_id, payload)
ONLINE_DIR = "online"
"""The online phase's folder inside an offline-to-online job's run folder."""


# -- pool workers ------------------------------------------------------------------------
_QUEUE: Any = None
_JOB_RUNNING = threading.Event()
"""Set while this pool process runs a job (the exit watcher waits for it to save)."""


def init_pool_worker(env: dict[str, str], queue: Any, parent: int | None = None) -> None:
    """ProcessPoolExecutor initializer: runs in each fresh worker before any job.

    The pool's parent also puts `env` in the environment the workers start with: importing
    this module imports `shiftrl`, which may already start XLA (a module-level jnp
    constant does), and then NPROC set here would come too late. `parent`: the sweep's pid
    (it may have died while this worker was still importing)."""
    global _QUEUE
    limit_threads(env)
    _QUEUE = queue
    exit_with_parent(parent)


def exit_with_parent(parent: int | None = None, poll_s: float = 2.0, grace_s: float = 30.0) -> None:
    """Stop this worker when the sweep that started it is gone.

    A sweep killed without cleanup (SIGTERM, SIGKILL, a closed terminal) would otherwise
    leave its workers training on, writing into run folders the next sweep resumes. The
    worker sends itself SIGTERM first: a training loop takes it as a stop request and saves
    a checkpoint of the step it is at (`core.interrupt`), so the next sweep resumes from
    there, not from the last evaluation; anything else dies at once. It exits when the job
    has ended, or after `grace_s` regardless. `parent`: the sweep's pid, passed in because
    a worker still importing when the sweep died would otherwise take its new parent
    (init, a subreaper) for the sweep and wait forever."""
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        with contextlib.suppress(OSError):
            os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _JOB_RUNNING.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def pool_call(fn: str, *args: Any) -> dict[str, Any]:
    """What a pool process runs: `run_job` or `prepare_dataset`, by name."""
    _JOB_RUNNING.set()
    try:
        return CALLS[fn](*args, post=_post)
    except KeyboardInterrupt:
        # a stop request honoured (the run saved its checkpoint): the sweep is stopping,
        # so leave now rather than wait for its shutdown to kill an idle worker
        sys.stderr.flush()
        os._exit(130)
    finally:
        _JOB_RUNNING.clear()


def _post(event: Event) -> None:
    if _QUEUE is not None:
        with contextlib.suppress(Exception):  # progress is best effort
            _QUEUE.put(event)


# -- the job -----------------------------------------------------------------------------
def job_config(job: dict[str, Any]):
    """The RunConfig of a job record (see runner.Job.to_json): the learner (or recipe) with
    the budget's run settings, learner and add-on settings and network sizes, then the
    cell's overrides."""
    from shiftrl.bench.suites.spec import Budget, Cell, net_overrides
    from shiftrl.training.config import apply_overrides, make_config

    cell, budget = Cell.from_json(job["cell"]), Budget.from_json(job["budget"])
    learner = cell.learner
    config = make_config(
        learner.algo,
        learner.preset,
        dataset=cell.target,
        sources=tuple(cell.sources),
        steps=budget.steps,
        seed=int(job["seed"]),
        eval_envs=tuple(cell.eval_envs),
        addons=tuple(dict(a) for a in learner.addons),
    )
    config = apply_addon_settings(config, budget.addon_settings)
    settings: dict[str, Any] = {
        **{
            k: getattr(cell, k)
            for k in ("target_fraction", "target_count")
            if getattr(cell, k) is not None
        },
        "eval_every": budget.eval_every,
        "eval_episodes": budget.eval_episodes,
        **budget.settings,
        **budget.learner_settings.get(config.algo, {}),
        **net_overrides(learner.algo, budget.hidden),
        **learner.overrides,
    }
    return apply_overrides(config, settings)


def apply_addon_settings(config, addon_settings: dict[str, dict[str, Any]]):
    """Set a budget's add-on settings ({add-on: {setting: value}}) on the add-ons the run has;
    add-ons the run lacks are left alone. An unknown add-on or setting raises ConfigError."""
    import dataclasses

    from shiftrl.addons import ADDONS
    from shiftrl.core.errors import ConfigError

    addons = [dict(a) for a in config.addons]
    for name, settings in addon_settings.items():
        if name not in ADDONS:
            raise ConfigError(
                f"budget add-on settings for unknown add-on '{name}'; "
                f"available: {', '.join(sorted(ADDONS))}"
            )
        valid = [k for k in ADDONS[name]().to_json() if k != "name"]
        unknown = [k for k in settings if k not in valid]
        if unknown:
            raise ConfigError(
                f"unknown setting '{unknown[0]}' for add-on {name} in the budget; "
                f"valid keys: {', '.join(valid)}"
            )
        for record in addons:
            if record.get("name") == name:
                record.update(settings)
    return dataclasses.replace(config, addons=tuple(addons))


def online_plan(job: dict[str, Any]) -> dict[str, Any] | None:
    """The `finetune` arguments of a job's online phase (None for an offline-only job).

    Checked here, so a bad online phase fails when the jobs are planned: the replay mode,
    step counts that the collection bursts divide, the environment, and add-ons that have
    an online phase."""
    from shiftrl.addons import ADDONS
    from shiftrl.bench.suites.spec import Budget, Cell
    from shiftrl.core.errors import ConfigError
    from shiftrl.training.evaluation import check_env_id
    from shiftrl.training.finetune import REPLAY_MODES

    cell, budget = Cell.from_json(job["cell"]), Budget.from_json(job["budget"])
    online = cell.online
    if online is None:
        return None
    ob = budget.online
    steps = ob.online_steps(online)
    spi = ob.steps_per_iter
    if spi <= 0 or ob.eval_every <= 0 or ob.eval_episodes <= 0:
        raise ConfigError("online steps_per_iter, eval_every and eval_episodes must be positive")
    if steps <= 0 or steps % spi or ob.eval_every % spi:
        raise ConfigError(
            f"online steps ({steps:,}) and online eval_every ({ob.eval_every:,}) must be "
            f"positive multiples of steps_per_iter ({spi:,})"
        )
    if online.replay is not None and online.replay not in REPLAY_MODES:
        raise ConfigError(
            f"online replay must be one of {', '.join(REPLAY_MODES)}, got '{online.replay}'"
        )
    if not 0 <= online.warmup < steps:
        raise ConfigError(f"online warmup must be in [0, {steps:,}), got {online.warmup:,}")
    offline_only = [
        a["name"]
        for a in job_config(job).addons
        if a.get("name") in ADDONS and not ADDONS[a["name"]].finetune_supported
    ]
    if offline_only:
        raise ConfigError(f"add-on {', '.join(offline_only)} has no online phase")
    env = online.env or (cell.eval_envs[0] if cell.eval_envs else None)
    return {
        "online_steps": steps,
        "env_id": check_env_id(env) if env else None,
        "replay": online.replay,
        "top": online.top,
        "warmup": online.warmup,
        "eval_every": ob.eval_every,
        "eval_episodes": ob.eval_episodes,
        "steps_per_iter": spi,
    }


def online_finished(run_dir: Path, plan: dict[str, Any]) -> bool:
    """The online phase is finished when it wrote finetune.json for the planned steps."""
    out = run_dir / ONLINE_DIR
    if not (out / "finetune.json").exists() or not (out / "config.json").exists():
        return False
    recorded = json.loads((out / "config.json").read_text()).get("online_config", {})
    return recorded.get("total_steps") == plan["online_steps"]


def job_finished(run_dir: Path, job: dict[str, Any]) -> bool:
    """The offline run is finished and, for an offline-to-online job, the online phase too."""
    from shiftrl.bench.online_jobs import is_online_only, online_steps

    if is_online_only(job):
        return is_finished(run_dir, online_steps(job))
    if not is_finished(run_dir, int(job["budget"]["steps"])):
        return False
    plan = online_plan(job)
    return plan is None or online_finished(run_dir, plan)


def job_scores(run_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """{"final", "best"} of a job's runs on disk: the online phase's when the job has one."""
    from shiftrl.bench.online_jobs import is_online_only

    if job["cell"].get("online") and not is_online_only(job):
        path = run_dir / ONLINE_DIR
        return finished_scores(path) if (path / "metrics.jsonl").exists() else {}
    return finished_scores(run_dir)


def load_job_data(job: dict[str, Any]):
    """Target and source datasets; the target subset is taken by the trainer (RunConfig)."""
    from shiftrl.api import load_dataset
    from shiftrl.bench.suites.spec import Cell

    cell = Cell.from_json(job["cell"])
    return load_dataset(cell.target), [load_dataset(s) for s in cell.sources]


def resume_step(run_dir: Path) -> int:
    """The step a resumed run restarts from: its last checkpoint (0 for a fresh run)."""
    from shiftrl.training.checkpoint import latest

    if not (run_dir / "config.json").exists():
        return 0
    path = latest(run_dir)
    return int(path.stem.split("_")[-1]) if path is not None else 0


def is_finished(run_dir: Path, steps: int) -> bool:
    """A job is finished when its metrics.jsonl has a row at the final step (and the final
    checkpoint exists: a kill between the two leaves the row, which a resume drops)."""
    from shiftrl.training.checkpoint import checkpoint_path

    metrics = run_dir / "metrics.jsonl"
    if not checkpoint_path(run_dir, steps).exists() or not metrics.exists():
        return False
    return any(_row_step(line) == steps for line in metrics.read_text().splitlines())


def _row_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _config_mismatch(recorded: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """The settings where a run folder's recorded config differs from the job's (settings a
    newer shiftrl added, which the recorded config lacks, are not differences)."""
    wanted = json.loads(json.dumps(wanted))
    diffs = []
    for key in sorted(set(recorded) & set(wanted)):
        a, b = recorded[key], wanted[key]
        if key == "learner" and isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{k}: {a[k]} -> {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
        elif a != b:
            diffs.append(f"{key}: {a} -> {b}")
    return ", ".join(diffs[:4]) if diffs else None


@contextlib.contextmanager
def _output_to(log_path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (Python and C level) to the job's log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path, "a") as log:
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def prepare_dataset(
    dataset_id: str, study_dir: str, post: Callable[[Event], None] = lambda e: None
) -> dict[str, Any]:
    """Load (and for a built-in ID, make and cache) a dataset once, before the jobs that
    share it start, so parallel jobs never build the same cache at the same time."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in dataset_id)
    try:
        with _output_to(Path(study_dir) / "logs" / "datasets" / f"{safe}.log"):
            from shiftrl.api import load_dataset

            load_dataset(dataset_id)
        return {"dataset": dataset_id, "error": None}
    except Exception as e:
        return {"dataset": dataset_id, "error": _one_line(e)}


def _one_line(e: BaseException) -> str:
    from shiftrl.core.errors import ShiftRLError

    msg = str(e) if isinstance(e, ShiftRLError) else f"{type(e).__name__}: {e}"
    return " ".join(msg.split())


def run_job(
    job: dict[str, Any], study_dir: str, post: Callable[[Event], None] = lambda e: None
) -> dict[str, Any]:
    """Train one job into `<study_dir>/<cell>/seed<k>`, resuming what is there.

    Returns {"id", "status": done | skipped | failed, "final", "best", "resumed_from",
    "message", "seconds"}; never raises for a job's own failure.
    """
    from shiftrl.bench.online_jobs import is_online_only, run_online_job

    if is_online_only(job):  # no offline phase: a context learner online from scratch
        return run_online_job(job, study_dir, post)
    run_dir = Path(study_dir) / job["dir"]
    log_path = Path(study_dir) / "logs" / f"{job['dir']}.log"
    steps = int(job["budget"]["steps"])
    result: dict[str, Any] = {"id": job["id"], "final": None, "best": None, "message": ""}
    t0 = time.perf_counter()
    offline_done = is_finished(run_dir, steps)
    plan = None
    if job["cell"].get("online"):
        try:
            plan = online_plan(job)
        except Exception as e:
            return {**result, "status": "failed", "message": _one_line(e), "seconds": 0.0}
    if offline_done and (plan is None or online_finished(run_dir, plan)):
        return {**result, **job_scores(run_dir, job), "status": "skipped", "seconds": 0.0}
    start = steps if offline_done else resume_step(run_dir)
    post(("start", job["id"], {"resumed_from": start, "pid": os.getpid()}))
    try:
        with _output_to(log_path):
            if offline_done:
                _check_recorded(job, run_dir)
                print(f"== {job['id']} (offline phase finished)")
            else:
                print(f"== {job['id']} ({'resume from step ' + str(start) if start else 'fresh'})")
                run = _train(job, run_dir, post)
            if plan is None:
                result.update(final=run.score("final"), best=run.score("best"))
            else:
                _finetune(job, run_dir, plan, post)
                result.update(job_scores(run_dir, job))
        result["status"] = "done"
    except Exception as e:  # one job's failure never stops the sweep
        result["status"] = "failed"
        result["message"] = _one_line(e)
        with open(log_path, "a") as log:
            log.write(traceback.format_exc())
    result["resumed_from"] = start
    result["seconds"] = time.perf_counter() - t0
    return result


def _check_recorded(job: dict[str, Any], run_dir: Path):
    """The job's RunConfig, after checking that a run folder already there was made with it."""
    from shiftrl.core.errors import ConfigError

    config = job_config(job)
    if (run_dir / "config.json").exists():
        recorded = json.loads((run_dir / "config.json").read_text())["config"]
        diff = _config_mismatch(recorded, config.to_json())
        if diff:
            raise ConfigError(
                f"{run_dir} was started with another configuration ({diff}); "
                "remove it or use another --out"
            )
    return config


def _train(job: dict[str, Any], run_dir: Path, post: Callable[[Event], None]):
    from shiftrl.training.run import train

    config = _check_recorded(job, run_dir)
    target, sources = load_job_data(job)

    def on_eval(row: dict) -> None:
        post(("eval", job["id"], {"step": row["step"], "score": row.get("normalized_score")}))

    return train(
        config, target, sources, out=run_dir, resume=True, progress="plain", callbacks=(on_eval,)
    )


def _finetune(
    job: dict[str, Any], run_dir: Path, plan: dict[str, Any], post: Callable[[Event], None]
):
    """The online phase into `<run_dir>/online`: fresh, or resumed from its last checkpoint."""
    from shiftrl.core.errors import ConfigError
    from shiftrl.training.finetune import finetune

    out = run_dir / ONLINE_DIR
    resume = (out / "config.json").exists()
    if resume:
        recorded = json.loads((out / "config.json").read_text())
        diff = _online_mismatch(recorded, plan)
        if diff:
            raise ConfigError(
                f"{out} was started with another online phase ({diff}); "
                "remove it or use another --out"
            )
    elif out.exists() and not any(out.iterdir()):
        out.rmdir()  # killed before it wrote anything
    print(
        f"== {job['id']}: online phase, {plan['online_steps']:,} steps "
        f"({'resumed' if resume else 'fresh'})",
        flush=True,
    )
    res = finetune(run_dir, out=out, resume=resume, progress="plain", **plan)
    offline = int(job["budget"]["steps"])
    post(("eval", job["id"], {"step": offline + plan["online_steps"], "score": res.score_after}))
    print(
        f"== online: {res.score_before:.1f} -> {res.score_after:.1f} in {res.env_id}, "
        f"regret {res.regret:.3f}"
    )
    return res


def _online_mismatch(recorded: dict[str, Any], plan: dict[str, Any]) -> str | None:
    """Where an online folder's recorded settings differ from the job's online phase."""
    rec = recorded.get("online_config", {})
    pairs = [
        ("total_steps", rec.get("total_steps"), plan["online_steps"]),
        ("env", rec.get("env_id"), plan["env_id"]),
        ("eval_every", rec.get("eval_every"), plan["eval_every"]),
        ("eval_episodes", rec.get("eval_episodes"), plan["eval_episodes"]),
        ("steps_per_iter", rec.get("steps_per_iter"), plan["steps_per_iter"]),
        ("warmup", rec.get("learning_starts"), plan["warmup"]),
        ("replay", recorded.get("replay"), plan["replay"]),
    ]
    diffs = [f"{k}: {a} -> {b}" for k, a, b in pairs if b is not None and a != b]
    return ", ".join(diffs[:4]) if diffs else None


def finished_scores(run_dir: Path) -> dict[str, Any]:
    scores = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        with contextlib.suppress(ValueError):
            s = json.loads(line).get("normalized_score")
            if s is not None:
                scores.append(float(s))
    return {"final": scores[-1], "best": max(scores)} if scores else {}


# -- Ray tasks ---------------------------------------------------------------------------
def ray_call(fn: str, env: dict[str, str], queue: Any, *args: Any) -> dict[str, Any]:
    """A Ray task: the same calls, events through a `ray.util.queue.Queue`.

    Ray reuses worker processes, so the environment is set on every call; it takes effect
    when the process first starts XLA, and every task of a sweep asks for the same values.
    """
    limit_threads(env)

    def post(event: Event) -> None:
        with contextlib.suppress(Exception):
            queue.put(event, block=False)

    return CALLS[fn](*args, post=post)


def _run_group(*args: Any, post: Callable[[Event], None]) -> dict[str, Any]:
    from shiftrl.bench.seed_groups import run_group  # imports this module's helpers

    return run_group(*args, post=post)


CALLS: dict[str, Callable[..., dict[str, Any]]] = {
    "job": run_job,
    "group": _run_group,
    "prepare": prepare_dataset,
}
