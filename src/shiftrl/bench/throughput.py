"""`shiftrl bench throughput`: gradient updates per second at paper sizes.

Workload (the same for every implementation): 17-dim observations, 6-dim actions,
batch 256, 2x256 MLPs (twin critics where the learner has them), 100k synthetic
transitions held on the device, batches sampled on device. We time our full train
step (sampler + add-on stage + learner update) fused `steps` at a time, after a warm-up
call that compiles it. Beside it, in the same run: a minimal fused JAX loop (the
machine's ceiling) and d3rlpy in its own venv with 1 thread and torch's default.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.core.types import TARGET
from shiftrl.learners import get_learner
from shiftrl.learners.base import LearnerSpec
from shiftrl.training.loop import (
    SamplerSpec,
    choose_seed_axes,
    init_carry,
    make_train_chunk,
    stack_carries,
)

OBS_DIM, ACT_DIM, BATCH, HIDDEN, N_DATA = 17, 6, 256, (256, 256), 100_000
NET_KEYS = ("actor_hidden", "critic_hidden", "hidden")


def paper_size_learner(algo: str, steps: int):
    cls = get_learner(algo)
    fields = cls.config_fields()
    # all learners at 2x256 for a like-for-like comparison (CORL's CQL uses 3x256)
    cfg = dataclasses.replace(cls.Config(), **{k: HIDDEN for k in NET_KEYS if k in fields})
    return cls(cfg, LearnerSpec(OBS_DIM, ACT_DIM, steps))


def synthetic_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        {
            "obs": jnp.asarray(rng.normal(size=(N_DATA, OBS_DIM)), jnp.float32),
            "action": jnp.asarray(rng.uniform(-1, 1, (N_DATA, ACT_DIM)), jnp.float32),
            "reward": jnp.asarray(rng.normal(size=N_DATA), jnp.float32),
            "next_obs": jnp.asarray(rng.normal(size=(N_DATA, OBS_DIM)), jnp.float32),
            "terminal": jnp.asarray(rng.random(N_DATA) < 0.001, jnp.float32),
        },
    )


def measure_shiftrl(algo: str, steps: int = 2000, repeats: int = 2, seeds: int = 1) -> dict:
    """Our train step's updates/s; with `seeds` > 1, that many seeds vmapped in one program
    (`train_seeds`), counting every seed's updates."""
    learner = paper_size_learner(algo, steps)
    vmapped = seeds > 1
    sampler = SamplerSpec((BATCH,), (TARGET,))
    data = synthetic_data()
    carries = [init_carry(learner, (), learner.spec, seed=s) for s in range(seeds)]
    axes = choose_seed_axes(learner, (), sampler, carries, data) if vmapped else None
    chunk = make_train_chunk(learner, (), sampler, axes)
    carry = stack_carries(carries, axes) if vmapped else carries[0]
    carry, _ = chunk(carry, data, steps)  # compile + warm-up
    jax.block_until_ready(carry)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        carry, metrics = chunk(carry, data, steps)
        jax.block_until_ready((carry, metrics))
        best = min(best, time.perf_counter() - t0)
    return {
        "impl": f"shiftrl, {seeds} seeds vmapped" if vmapped else "shiftrl",
        "algo": learner.name,
        "updates_per_s": steps * seeds / best,
        "seeds": seeds,
        "steps": steps,
        "seconds": best,
    }


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def run_throughput(
    algo: str, steps: int = 2000, with_peers: bool = True, vmap_seeds: int = 1
) -> dict:
    """Our step, the fused ceiling and d3rlpy; `vmap_seeds` > 1 adds our step with that many
    seeds vmapped (its updates/s count every seed's updates)."""
    from shiftrl.bench.fused import measure_fused

    report = {"algo": algo, "machine": machine(), "results": []}
    report["results"].append(measure_shiftrl(algo, steps))
    if vmap_seeds > 1:
        report["results"].append(measure_shiftrl(algo, steps, seeds=vmap_seeds))
    fused = measure_fused(algo, steps)
    report["results"].append({"impl": "fused-jax (ceiling)", **fused})
    if with_peers:
        from shiftrl.bench.peers import measure_d3rlpy

        peer_steps = max(steps // 4, 200)  # d3rlpy is slower; fewer steps keep the run short
        for threads in (1, None):
            rec = measure_d3rlpy(algo, peer_steps, threads)
            label = f"d3rlpy ({'1 thread' if threads == 1 else 'default threads'})"
            report["results"].append({"impl": label, **rec})
    ours = report["results"][0]["updates_per_s"]
    for r in report["results"]:
        if r.get("updates_per_s"):
            r["shiftrl_ratio"] = ours / r["updates_per_s"]
    return report


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    m = report["machine"]
    table = Table(
        title=f"{report['algo']}: updates/s at 2x256, batch 256 ({m['cores']} cores, {m['backend']})"
    )
    for col in ("implementation", "updates/s", "shiftrl / this"):
        table.add_column(col)
    for r in report["results"]:
        if "error" in r:
            table.add_row(r["impl"], "n/a", r["error"].splitlines()[0])
        else:
            table.add_row(
                r["impl"],
                f"{r['updates_per_s']:.0f}",
                f"{r.get('shiftrl_ratio', float('nan')):.2f}x",
            )
    Console().print(table)
