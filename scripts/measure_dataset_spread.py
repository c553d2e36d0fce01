"""Measure how much a built-in dataset's statistics move when its bytes do not reproduce.

A build on another CPU (another BLAS kernel) or another physics release diverges from the
recorded trajectories at the first differing bit, after which it is a fresh sample of the
same distribution; a build with another collection seed is a fresh sample from the start.
So the seed-to-seed spread bounds the cross-platform spread, and both calibrate the
tolerances of the statistical check in `shiftrl.data.verify`.

Writes one JSON line per build to OUT (default runs/spread/builds.jsonl); re-running skips
builds already measured (safe to kill and resume).

    python scripts/measure_dataset_spread.py [OUT]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# (id, size, seeds): recorded sizes where affordable, so seed 0 is also compared with the record
PLAN = [
    ("pointreach/mixed-v0", 4000, range(5)),
    ("pendulum/medium-v0", 20000, range(5)),
    ("pendulum-mass-2.0/medium-replay-v0", 6000, range(5)),
    ("pendulum-base/medium-replay-v0", 7000, range(5)),
    ("walker2d-friction-0.5/medium-replay-v0", 30000, range(5)),
    ("halfcheetah-mass-2.0/medium-replay-v0", 40000, range(5)),
    ("hopper-base/medium-v0", 50000, range(5)),
    ("hopper-base/random-v0", 50000, range(5)),
    ("hopper-base/expert-v0", 50000, range(3)),
    ("walker2d-base/medium-v0", 50000, range(3)),
    ("hopper-gravity-0.5/medium-replay-v0", 100000, range(2)),
    ("halfcheetah-base/medium-replay-v0", 50000, range(1)),
    ("halfcheetah-gravity-0.5/medium-replay-v0", 80000, range(1)),
    ("walker2d-gravity-0.5/medium-replay-v0", 90000, range(1)),
    ("walker2d-mass-2.0/medium-replay-v0", 90000, range(1)),
]


def main(out: Path) -> None:
    from shiftrl.data import records, registry
    from shiftrl.data.verify import build_statistics, platform_fingerprint

    out.parent.mkdir(parents=True, exist_ok=True)
    blas = os.environ.get("OPENBLAS_CORETYPE", "")
    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done.add((r["id"], r["size"], r["seed"], r["coretype"]))
    for did, size, seeds in PLAN:
        for seed in seeds:
            if (did, size, seed, blas) in done:
                continue
            t0 = time.perf_counter()
            ds = registry.make_dataset(did, size, seed, verify=False)
            row = {
                "id": did,
                "size": size,
                "seed": seed,
                "coretype": blas,
                "seconds": round(time.perf_counter() - t0, 1),
                "sha256": ds.checksum(),
                "stats": build_statistics(ds),
                "record": records.recorded_build(did, size, seed),
                "platform": platform_fingerprint(),
                "versions": records.versions(),
            }
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(did, size, seed, blas, row["seconds"], flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/spread/builds.jsonl"))
