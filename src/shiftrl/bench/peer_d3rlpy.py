"""Throughput of d3rlpy's learners: gradient updates per second on the CPU.

A standalone script, run by the python of a separate virtual environment that has d3rlpy
(d3rlpy 2.8.1 pins gymnasium==1.0.0 and pulls the old `gym`, so it cannot live beside
shiftrl). It imports neither shiftrl nor jax:

    ~/.cache/shiftrl/peer-venvs/d3rlpy/bin/python peer_d3rlpy.py --algo td3bc --steps 1000 --warmup 50

and prints one JSON line, e.g.

    {"peer": "d3rlpy", "version": "2.8.1", "torch": "2.13.0+cpu", "algo": "td3bc",
     "updates_per_s": 65.3, "steps": 1000, "threads": 1, ...}

What is timed: `algo.update(batch)` in a plain loop, i.e. exactly what d3rlpy's `fit` runs per
step minus its sampler and logger. `update` includes d3rlpy's numpy -> torch conversion of the
batch (`TorchMiniBatch.from_batch`), the gradient step(s) and the `.item()` of the losses.
Batches come from a pool pre-sampled with the dataset's own transition sampler before the
clock starts and are cycled through. d3rlpy's sampler builds a batch from 256 python-level
`sample_transition()` calls, so its cost is measured separately (`sample_ms_per_batch`) and
`updates_per_s_incl_sampler` estimates what `fit` would reach (update loop + sampler).

One "update" is one `update` call: for TD3+BC a critic step every call and an actor/target
step every 2nd call (as the reference code and shiftrl); for IQL/CQL critic (+value) + actor;
for BC one actor step.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

OBS_DIM = 17
ACT_DIM = 6
BATCH = 256


def make_dataset(n: int, episode_len: int, seed: int):
    import d3rlpy

    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, OBS_DIM)).astype(np.float32)
    actions = rng.uniform(-1.0, 1.0, (n, ACT_DIM)).astype(np.float32)
    rewards = rng.standard_normal((n, 1)).astype(np.float32)
    terminals = np.zeros(n, np.float32)
    timeouts = np.zeros(n, np.float32)
    timeouts[episode_len - 1 :: episode_len] = 1.0
    timeouts[-1] = 1.0
    return d3rlpy.dataset.MDPDataset(
        observations=obs,
        actions=actions,
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        action_space=d3rlpy.constants.ActionSpace.CONTINUOUS,
    )


def make_algo(name: str):
    """The d3rlpy learner with paper settings; encoders are d3rlpy's default 2x256 ReLU MLPs."""
    import d3rlpy

    algos = d3rlpy.algos
    if name == "td3bc":
        # Fujimoto & Gu 2021: alpha 2.5, policy noise 0.2 / clip 0.5, actor every 2nd step.
        cfg = algos.TD3PlusBCConfig(
            batch_size=BATCH,
            alpha=2.5,
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            update_actor_interval=2,
            n_critics=2,
        )
    elif name == "iql":
        # Kostrikov et al. 2022, locomotion: expectile 0.7, temperature 3.0.
        cfg = algos.IQLConfig(
            batch_size=BATCH,
            expectile=0.7,
            weight_temp=3.0,
            max_weight=100.0,
            n_critics=2,
        )
    elif name == "cql":
        # CORL's CQL: fixed conservative weight 10.0 (no Lagrange tuning of alpha: with
        # alpha_learning_rate=0 d3rlpy keeps alpha at initial_alpha=1), 10 sampled actions,
        # automatic entropy tuning, actor lr 3e-5, critic lr 3e-4.
        # CORL's CQL uses 3 hidden layers of 256; the bench uses 2x256 for all learners.
        cfg = algos.CQLConfig(
            batch_size=BATCH,
            conservative_weight=10.0,
            n_action_samples=10,
            alpha_learning_rate=0.0,
            initial_alpha=1.0,
            actor_learning_rate=3e-5,
            critic_learning_rate=3e-4,
            temp_learning_rate=3e-4,
            n_critics=2,
        )
    elif name == "bc":
        # Deterministic policy regressed with MSE (CORL's BC), lr 3e-4 as shiftrl's preset.
        cfg = algos.BCConfig(batch_size=BATCH, learning_rate=3e-4, policy_type="deterministic")
    else:
        raise SystemExit(f"unknown --algo {name!r}: td3bc, iql, cql or bc")
    return cfg.create(device="cpu:0")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="td3bc", choices=["td3bc", "iql", "cql", "bc"])
    p.add_argument("--steps", type=int, default=1000, help="timed update calls")
    p.add_argument("--warmup", type=int, default=50, help="untimed update calls first")
    p.add_argument("--transitions", type=int, default=100_000)
    p.add_argument("--episode-len", type=int, default=1000)
    p.add_argument("--pool", type=int, default=64, help="pre-sampled batches cycled through")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import d3rlpy
    import torch

    d3rlpy.seed(args.seed)
    dataset = make_dataset(args.transitions, args.episode_len, args.seed)
    algo = make_algo(args.algo)
    algo.build_with_dataset(dataset)

    t0 = time.perf_counter()
    pool = [dataset.sample_transition_batch(BATCH) for _ in range(args.pool)]
    sample_s = (time.perf_counter() - t0) / args.pool

    for i in range(args.warmup):
        algo.update(pool[i % args.pool])

    t0 = time.perf_counter()
    for i in range(args.steps):
        algo.update(pool[i % args.pool])
    seconds = time.perf_counter() - t0

    print(
        json.dumps(
            {
                "peer": "d3rlpy",
                "version": d3rlpy.__version__,
                "torch": torch.__version__,
                "algo": args.algo,
                "updates_per_s": round(args.steps / seconds, 2),
                "steps": args.steps,
                "seconds": round(seconds, 3),
                "threads": torch.get_num_threads(),
                "batch_size": BATCH,
                "sample_ms_per_batch": round(sample_s * 1e3, 3),
                "updates_per_s_incl_sampler": round(
                    args.steps / (seconds + args.steps * sample_s), 2
                ),
                "sampling": "pre-sampled pool excluded from updates_per_s",
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
