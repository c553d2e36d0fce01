"""Peer libraries measured in their own virtual environments, through a subprocess.

d3rlpy 2.8.1 pins gymnasium==1.0.0 and pulls the old `gym`, so it cannot be installed beside
shiftrl: it lives in a venv of its own (see `install_hint()`), whose python runs
`peer_d3rlpy.py` and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()


DEFAULT_D3RLPY_VENV = _cache_home() / "shiftrl" / "peer-venvs" / "d3rlpy"
"""Per user (XDG cache), so the default works on any machine; SHIFTRL_D3RLPY_PYTHON overrides."""
PEER_SCRIPT = Path(__file__).with_name("peer_d3rlpy.py")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def install_hint() -> str:
    """How to create the peer venv that `measure_d3rlpy` uses."""
    venv = DEFAULT_D3RLPY_VENV
    return (
        "d3rlpy needs a virtual environment of its own (it pins gymnasium==1.0.0 and the old gym):\n"
        f"  python3.11 -m venv {venv}\n"
        f"  {venv}/bin/pip install torch==2.13.0   # a CPU build: use PyTorch's CPU wheel index\n"
        f"  {venv}/bin/pip install d3rlpy==2.8.1\n"
        "Install the CPU torch first so that d3rlpy does not pull a CUDA build. "
        "Another location can be given with SHIFTRL_D3RLPY_PYTHON=/path/to/venv/bin/python."
    )


def find_d3rlpy_python() -> str | None:
    """The peer venv's python: $SHIFTRL_D3RLPY_PYTHON, else the default venv's, else None."""
    env = os.environ.get("SHIFTRL_D3RLPY_PYTHON")
    if env:
        return env
    python = DEFAULT_D3RLPY_VENV / "bin" / "python"
    return str(python) if python.exists() else None


def measure_d3rlpy(
    algo: str,
    steps: int,
    threads: int | None,
    warmup: int = 50,
    timeout_s: float = 1800.0,
) -> dict:
    """d3rlpy's updates/second for `algo` (td3bc, iql, cql, bc) on the CPU.

    `threads` sets OMP_NUM_THREADS and MKL_NUM_THREADS for the subprocess; None leaves them
    unset (torch's default: one thread per core). Returns the peer's JSON record, or
    {"error": reason} when the peer venv is missing or the run fails.
    """
    python = find_d3rlpy_python()
    if python is None:
        return {"error": "d3rlpy peer venv not found\n" + install_hint()}
    env = dict(os.environ)
    for var in THREAD_VARS:
        env.pop(var, None)
        if threads is not None:
            env[var] = str(threads)
    cmd = [python, str(PEER_SCRIPT), "--algo", algo, "--steps", str(steps), "--warmup", str(warmup)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        return {"error": f"peer python {python} not found\n" + install_hint()}
    except subprocess.TimeoutExpired:
        return {"error": f"d3rlpy {algo} did not finish in {timeout_s:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("peer") == "d3rlpy":
                return record
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"d3rlpy {algo} failed (exit {proc.returncode}): " + " | ".join(tail)}
