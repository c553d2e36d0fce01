"""Measure dataset collection speed (transitions/s) the way `shiftrl data make` collects.

    .venv/bin/python scripts/measure_collect.py --variant hopper-base --level medium \
        [--snapshot zoo-runs/hopper-base/snapshots/actor_0000100000.msgpack] \
        [--size 50000] [--repeats 3] [--out docs/benchmarks/collection-cpu.json]

With `--snapshot`, a temporary zoo holding that SAC actor as the variant's `medium` and
`expert` is used (for measuring before the zoo has the variant); otherwise the shipped zoo.
Reports the NumPy batch policy that datasets use and, for comparison, the zoo's jitted JAX
policy (`shiftrl.zoo.BehaviourPolicy`) in the same collector, interleaved, with the load
average and the busiest other processes, because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path


def temp_zoo(variant: str, snapshot: Path) -> Path:
    from shiftrl.envs import resolve
    from shiftrl.training.online import identity_preprocessor

    root = Path(tempfile.mkdtemp(prefix="shiftrl-zoo-"))
    (root / variant).mkdir()
    (root / variant / "policy.msgpack").write_bytes(snapshot.read_bytes())
    env_id = resolve(variant)
    pre = identity_preprocessor(env_id)
    snap = {"file": f"{variant}/policy.msgpack", "train_steps": 0}
    entry = {
        "env_id": env_id,
        "obs_dim": len(pre.obs_mean),
        "act_dim": len(pre.action_low),
        "hidden": [128, 128],
        "action_low": pre.action_low.tolist(),
        "action_high": pre.action_high.tolist(),
        "snapshots": [{"name": "medium", **snap}, {"name": "expert", **snap}],
    }
    (root / "manifest.json").write_text(json.dumps({"format": 1, "policies": {variant: entry}}))
    return root


def busiest_processes(n: int = 4) -> list[str]:
    """The busiest other processes ('%CPU command'), this one and `ps` left out."""
    out = subprocess.run(
        ["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    rows = []
    for line in out:
        pid, pcpu, cmd = (line.split(None, 2) + ["", ""])[:3]
        if pid != str(os.getpid()) and not cmd.startswith("ps "):
            rows.append(f"{pcpu} {' '.join(cmd.split())}"[:120])
    return rows[:n]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _stats(v: list[float]) -> dict:
    return {"median": round(sorted(v)[len(v) // 2]), "runs": [round(x) for x in v]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="hopper-base")
    ap.add_argument("--level", default="medium", choices=["random", "medium", "expert"])
    ap.add_argument("--snapshot", type=Path)
    ap.add_argument("--size", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-jax", action="store_true", help="skip the JAX-policy comparison")
    ap.add_argument("--envs", type=int, help="override the number of environments")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.snapshot is not None:
        os.environ["SHIFTRL_ZOO_DIR"] = str(temp_zoo(args.variant, args.snapshot))

    from shiftrl import zoo
    from shiftrl.data import zoo_datasets
    from shiftrl.data.collect import collect

    entry = zoo.manifest()["policies"][args.variant]
    env_id = entry["env_id"]
    envs = args.envs or zoo_datasets.num_envs(args.size)
    policies = {"numpy (datasets)": zoo_datasets._policy(args.variant, args.level)}
    if args.level != "random" and not args.no_jax:
        policies["jax jit (zoo.BehaviourPolicy)"] = zoo.load_behaviour(args.variant, args.level)
    for p in policies.values():  # warm up: imports, jit compile
        collect(env_id, p, 2000, num_envs=envs, seed=99)
    load_before = os.getloadavg()
    others = busiest_processes()
    runs: dict[str, list[float]] = {k: [] for k in policies}
    cpu_runs: dict[str, list[float]] = {k: [] for k in policies}
    episodes: dict[str, int] = {}
    for r in range(args.repeats):
        for name, p in policies.items():
            t, c = time.perf_counter(), time.process_time()
            ds = collect(env_id, p, args.size, num_envs=envs, seed=r)
            runs[name].append(args.size / (time.perf_counter() - t))
            cpu_runs[name].append(args.size / (time.process_time() - c))
            episodes[name] = ds.num_episodes
            print(
                f"{name}: {runs[name][-1]:.0f} transitions/s wall-clock, "
                f"{cpu_runs[name][-1]:.0f} per CPU-second ({ds.num_episodes} episodes)"
            )
    result = {
        "what": f"collect {args.size} transitions of {args.variant}, level {args.level}, "
        f"{envs} envs, one process (as `shiftrl data make`)",
        "snapshot": str(args.snapshot) if args.snapshot else "shipped zoo",
        "transitions_per_s": {k: _stats(v) for k, v in runs.items()},
        "transitions_per_cpu_s": {k: _stats(v) for k, v in cpu_runs.items()},
        "note": "per CPU-second = transitions / CPU time of this process (all its threads); "
        "it is what one uncontended core would give, the wall-clock rate depends on what else runs",
        "episodes": episodes,
        "target_transitions_per_s": 3000,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "busiest_other_processes": others,
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
