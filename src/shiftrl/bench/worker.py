"""One benchmark job in a worker process (a pool process or a Ray task).

Kept free of JAX imports at module level: `limit_threads` must set the environment before
XLA's CPU client starts, so N single-threaded jobs share N cores without oversubscribing.

Measured with jax 0.10.2 on the 2-core machine (per-thread CPU time of a jitted matmul loop):
`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false` alone leaves 2 busy compute threads;
`NPROC=1` (read by XLA's CPU client when it starts) leaves 1, as does pinning the process
to one core. So the worker sets NPROC = its CPU share, plus the flags for older jaxlibs and
the BLAS / OpenMP thread counts for NumPy and MuJoCo.

Jobs also share JAX's persistent compilation cache (`$SHIFTRL_JAX_CACHE`, default
~/.cache/shiftrl/jax; `off` disables it): a job whose learner and shapes were compiled
before skips compilation (a smoke job: ~39 s -> ~10 s on the loaded 2-core machine).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Event = tuple  # ("start" | "eval", job_id, payload)


def thread_env(cpus: float = 1.0) -> dict[str, str]:
    """Environment variables that keep one job's compute threads to `cpus` cores."""
    n = str(max(1, math.floor(cpus)))
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags and n == "1":
        flags = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    env = {
        "NPROC": n,
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        # several jobs may share one accelerator: allocate on demand, not 75% each
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "MPLBACKEND": "Agg",
    }
    if flags:
        env["XLA_FLAGS"] = flags
    cache = os.environ.get("SHIFTRL_JAX_CACHE", str(Path.home() / ".cache" / "shiftrl" / "jax"))
    if (
        cache.lower() not in ("", "0", "off", "none")
        and "JAX_COMPILATION_CACHE_DIR" not in os.environ
    ):
        env["JAX_COMPILATION_CACHE_DIR"] = cache
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def limit_threads(env: dict[str, str]) -> None:
    """Apply `thread_env` in this process: before XLA starts (NPROC, XLA_FLAGS are read then).

    JAX reads its JAX_* settings when imported, which `import shiftrl` already did, so the
    compilation-cache settings are also applied to the live config.
    """
    os.environ.update(env)
    if "jax" in sys.modules:
        import jax

        for key, value in env.items():
            if key.startswith("JAX_"):
                name = key.lower()
                current = getattr(jax.config, name)
                jax.config.update(name, type(current)(value) if current is not None else value)


# -- pool workers ------------------------------------------------------------------------
_QUEUE: Any = None


def init_pool_worker(env: dict[str, str], queue: Any) -> None:
    """ProcessPoolExecutor initializer: runs in each fresh worker before any job.

    The pool's parent also puts `env` in the environment the workers start with: importing
    this module imports `shiftrl`, which may already start XLA (a module-level jnp
    constant does), and then NPROC set here would come too late."""
    global _QUEUE
    limit_threads(env)
    _QUEUE = queue


def pool_call(fn: str, *args: Any) -> dict[str, Any]:
    """What a pool process runs: `run_job` or `prepare_dataset`, by name."""
    return CALLS[fn](*args, post=_post)


def _post(event: Event) -> None:
    if _QUEUE is not None:
        with contextlib.suppress(Exception):  # progress is best effort
            _QUEUE.put(event)


# -- the job -----------------------------------------------------------------------------
def job_config(job: dict[str, Any]):
    """The RunConfig of a job record (see runner.Job.to_json)."""
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
    settings: dict[str, Any] = {
        **{
            k: getattr(cell, k)
            for k in ("target_fraction", "target_count")
            if getattr(cell, k) is not None
        },
        "eval_every": budget.eval_every,
        "eval_episodes": budget.eval_episodes,
        **budget.settings,
        **net_overrides(learner.algo, budget.hidden),
        **learner.overrides,
    }
    return apply_overrides(config, settings)


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
    run_dir = Path(study_dir) / job["dir"]
    log_path = Path(study_dir) / "logs" / f"{job['dir']}.log"
    steps = int(job["budget"]["steps"])
    result: dict[str, Any] = {"id": job["id"], "final": None, "best": None, "message": ""}
    t0 = time.perf_counter()
    if is_finished(run_dir, steps):
        return {**result, **finished_scores(run_dir), "status": "skipped", "seconds": 0.0}
    start = resume_step(run_dir)
    post(("start", job["id"], {"resumed_from": start, "pid": os.getpid()}))
    try:
        with _output_to(log_path):
            print(f"== {job['id']} ({'resume from step ' + str(start) if start else 'fresh'})")
            run = _train(job, run_dir, post)
        result.update(status="done", final=run.score("final"), best=run.score("best"))
    except Exception as e:  # one job's failure never stops the sweep
        result["status"] = "failed"
        result["message"] = _one_line(e)
        with open(log_path, "a") as log:
            log.write(traceback.format_exc())
    result["resumed_from"] = start
    result["seconds"] = time.perf_counter() - t0
    return result


def _train(job: dict[str, Any], run_dir: Path, post: Callable[[Event], None]):
    from shiftrl.core.errors import ConfigError
    from shiftrl.training.run import train

    config = job_config(job)
    if (run_dir / "config.json").exists():
        recorded = json.loads((run_dir / "config.json").read_text())["config"]
        diff = _config_mismatch(recorded, config.to_json())
        if diff:
            raise ConfigError(
                f"{run_dir} was started with another configuration ({diff}); "
                "remove it or use another --out"
            )
    target, sources = load_job_data(job)

    def on_eval(row: dict) -> None:
        post(("eval", job["id"], {"step": row["step"], "score": row.get("normalized_score")}))

    return train(
        config, target, sources, out=run_dir, resume=True, progress=False, callbacks=(on_eval,)
    )


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


CALLS: dict[str, Callable[..., dict[str, Any]]] = {"job": run_job, "prepare": prepare_dataset}
