"""Where a sweep's jobs run: a local 'spawn' process pool, or Ray tasks (local or a cluster).

Both expose the same small surface to `runner.run_suite`: start(study_dir), submit(fn, *args)
-> handle, wait(handles, timeout) -> done handles, result(handle), events() (progress posted
by the jobs), shutdown(cancel).
"""

from __future__ import annotations

import contextlib
import os
import queue as queue_mod
import time
import warnings
from pathlib import Path
from typing import Any

from shiftrl.bench.threads import thread_env
from shiftrl.core.errors import ConfigError

BACKENDS = ("local", "ray")
STOP_GRACE_S = 30.0
"""How long a stopping sweep waits for its workers to save their runs before killing them."""


class LocalBackend:
    """A 'spawn' process pool; each worker limits XLA/BLAS to its CPU share before JAX starts."""

    name = "local"

    def __init__(self, workers: int, cpus_per_job: float = 1.0):
        self.workers, self.cpus = workers, cpus_per_job
        self.ex: Any = None
        self.queue: Any = None

    def start(self, study_dir: Path) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from shiftrl.bench.worker import init_pool_worker

        ctx = mp.get_context("spawn")
        self.study_dir = study_dir
        self.queue = ctx.Queue()
        env = thread_env(self.cpus)
        # Workers are spawned on demand and inherit this environment, so their XLA starts
        # with it even though `import shiftrl` may start XLA before any initializer runs.
        self.saved_env = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        self.ex = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=init_pool_worker,
            initargs=(env, self.queue, os.getpid()),
        )

    def submit(self, fn: str, *args: Any) -> Any:
        from shiftrl.bench.worker import pool_call

        return self.ex.submit(pool_call, fn, *args, str(self.study_dir))

    def wait(self, handles: list, timeout: float) -> list:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        return handle.result()

    def events(self) -> list:
        out = []
        with contextlib.suppress(queue_mod.Empty, OSError, ValueError):
            while True:
                out.append(self.queue.get_nowait())
        return out

    def shutdown(self, cancel: bool = False) -> None:
        if self.ex is None:
            return
        if cancel:
            procs = list((getattr(self.ex, "_processes", None) or {}).values())
            self.ex.shutdown(wait=False, cancel_futures=True)
            # SIGTERM: a job in its training loop saves the step it is at and its worker
            # leaves (core.interrupt, worker.pool_call); an idle worker dies at once
            for p in procs:
                with contextlib.suppress(Exception):
                    p.terminate()
            deadline = time.monotonic() + STOP_GRACE_S
            for p in procs:
                with contextlib.suppress(Exception):
                    p.join(max(0.0, deadline - time.monotonic()))
                    if p.is_alive():
                        p.kill()
        else:
            self.ex.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self.queue.close()
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.ex = None


class RayBackend:
    """Jobs as Ray tasks with declared CPU/GPU needs, on `address` or a local Ray started here.

    On a multi-node cluster `--out` must be a folder every node sees (a shared filesystem).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None,
        workers: int | None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float = 0.0,
    ):
        self.address, self.workers = address, workers
        self.cpus, self.gpus = cpus_per_job, gpus_per_job
        self.owns = False
        self.refs: list = []

    def start(self, study_dir: Path) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the ray backend needs Ray: pip install 'shiftrl[ray]' (or use --backend local)"
            ) from None
        from ray.util.queue import Queue

        from shiftrl.bench.worker import ray_call

        self.ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False}
            if not self.address:  # start a local instance sized to the workers
                n = self.workers or os.cpu_count() or 1
                kwargs.update(num_cpus=max(1, int(n * self.cpus)), include_dashboard=False)
            with warnings.catch_warnings():
                # Ray starts its daemons with fork+exec; JAX warns about any fork
                warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
                ray.init(address=self.address, **kwargs)
            self.owns = True
        self.study_dir = study_dir
        self.queue = Queue(actor_options={"num_cpus": 0})
        # env_vars are set before Ray starts the worker process, so before XLA starts
        self.task = ray.remote(ray_call).options(
            num_cpus=self.cpus,
            num_gpus=self.gpus,
            max_retries=0,
            runtime_env={"env_vars": thread_env(self.cpus)},
        )

    def submit(self, fn: str, *args: Any) -> Any:
        env = thread_env(self.cpus)
        ref = self.task.remote(fn, env, self.queue, *args, str(self.study_dir))
        self.refs.append(ref)
        return ref

    def wait(self, handles: list, timeout: float) -> list:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if done:  # collect everything else that is ready too
            more, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
            done = list(dict.fromkeys([*done, *more]))
        return done

    def result(self, handle: Any) -> dict[str, Any]:
        return self.ray.get(handle)

    def events(self) -> list:
        out = []
        with contextlib.suppress(Exception):
            while not self.queue.empty():
                out.append(self.queue.get_nowait())
        return out

    def shutdown(self, cancel: bool = False) -> None:
        ray = self.ray
        if cancel:
            for ref in self.refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            self.queue.shutdown(force=True)
        if self.owns:
            ray.shutdown()


def make_backend(
    backend: str,
    workers: int | None,
    cpus_per_job: float,
    gpus_per_job: float,
    ray_address: str | None,
):
    if backend == "local":
        n = workers or max(1, int((os.cpu_count() or 1) // max(cpus_per_job, 1)))
        return LocalBackend(n, cpus_per_job), n
    if backend == "ray":
        return RayBackend(ray_address, workers, cpus_per_job, gpus_per_job), workers
    raise ConfigError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
