"""Keep one benchmark job's compute threads to its share of the cores.

Kept free of JAX imports: `limit_threads` must set the environment before XLA's CPU client
starts, so N single-threaded jobs share N cores without oversubscribing.

Measured with jax 0.10.2 on the 2-core machine (per-thread CPU time of a jitted matmul loop):
`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false` alone leaves 2 busy compute threads;
`NPROC=1` (read by XLA's CPU client when it starts) leaves 1, as does pinning the process
to one core. So the worker sets NPROC = its CPU share, plus the flags for older jaxlibs and
the BLAS / OpenMP thread counts for NumPy and MuJoCo. `thread_env` also points every job at JAX's
persistent compilation cache (see `worker.py`).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path


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
