"""`shiftrl bench throughput --algo mopo|mobile`: the cost of each model-based phase.

A MOPO or MOBILE run spends its time in three phases, each timed here at the reference
sizes on hopper-sized synthetic data (11-dim states, 3-dim actions), beside a minimal fused
JAX loop of the same work measured in the same run (`bench/fused_mb.py`):

1. dynamics training: one epoch of the 7 x 4 x 200 ensemble (`dynamics.train_epoch`),
   in training transitions per second (each through every member);
2. rollouts: one round of `starts` x `horizon` model steps with the SAC policy acting
   (`MOPO.rollout`), in model transitions per second;
3. policy updates: SAC on 5% real / 95% model rows (and, for MOBILE, the Bellman-
   inconsistency penalty on the model rows), the whole train step of the run (sampler,
   add-on stage, learner update), in updates per second; no rollout round falls inside
   the timed steps (their cost is phase 2).

From these, `run_cost` estimates a run's wall time on this machine: dynamics epochs,
rollout rounds every `rollout_every` steps, policy updates.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.bench.throughput import machine

OBS_DIM, ACT_DIM = 11, 3  # hopper
N_MODEL_DATA = 50_000
ROLLOUT_STARTS, HORIZON = 50_000, 5
BATCH = 256


def _learner(algo: str, steps: int):
    from shiftrl.learners import LearnerSpec, get_learner

    cls = get_learner("sac")
    return cls(
        cls.PRESETS["mobile" if algo == "mobile" else "mopo"], LearnerSpec(OBS_DIM, ACT_DIM, steps)
    )


def _addon(algo: str, rollout_every: int):
    """The add-on at its reference sizes with a freshly initialized ensemble, prepared as
    a run would be (identity units: the data here are already standardized)."""
    from shiftrl.addons import MOBILE, MOPO
    from shiftrl.addons.rollouts import Prepared
    from shiftrl.dynamics.ensemble import DynamicsModel, init_params

    cls = MOBILE if algo == "mobile" else MOPO
    addon = cls(rollout_batch=ROLLOUT_STARTS, horizon=HORIZON, rollout_every=rollout_every)
    config = addon.model_config
    model = DynamicsModel(
        params=init_params(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(1)),
        input_mean=jnp.zeros(OBS_DIM + ACT_DIM),
        input_std=jnp.ones(OBS_DIM + ACT_DIM),
        elites=jnp.arange(config.elites, dtype=jnp.int32),
        holdout_mse=jnp.zeros(config.members),
        config=config,
        obs_dim=OBS_DIM,
        act_dim=ACT_DIM,
    )
    prepared = Prepared(
        model=model,
        obs_mean=np.zeros(OBS_DIM, np.float32),
        obs_std=np.ones(OBS_DIM, np.float32),
        act_center=np.zeros(ACT_DIM, np.float32),
        act_half=np.ones(ACT_DIM, np.float32),
        reward_scale=1.0,
        reward_bias=0.0,
        termination="halfcheetah",  # never ends: every row does all `horizon` steps
        record={},
    )
    object.__setattr__(addon, "_prepared", prepared)
    return addon


def _data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "obs": jnp.asarray(rng.normal(size=(n, OBS_DIM)), jnp.float32),
        "action": jnp.asarray(rng.uniform(-1, 1, (n, ACT_DIM)), jnp.float32),
        "reward": jnp.asarray(rng.normal(size=n), jnp.float32),
        "next_obs": jnp.asarray(rng.normal(size=(n, OBS_DIM)), jnp.float32),
        "terminal": jnp.zeros(n, jnp.float32),
    }


def _seconds(fn, *args) -> float:
    """Best wall time of three calls after a compiling one (as `fused_mb._time_calls`)."""
    from shiftrl.bench.fused_mb import _time_calls

    return _time_calls(fn, *args)


def model_training(n: int = N_MODEL_DATA) -> dict:
    from shiftrl.dynamics import EnsembleConfig
    from shiftrl.dynamics.ensemble import _optimizer, init_params, train_epoch

    config = EnsembleConfig()
    data = _data(n)
    x = jnp.concatenate([data["obs"], data["action"]], -1)
    y = jnp.concatenate([data["next_obs"], data["reward"][:, None]], -1)
    boot = jax.random.randint(jax.random.PRNGKey(2), (config.members, n), 0, n)
    params = init_params(config, OBS_DIM, ACT_DIM, jax.random.PRNGKey(0))
    opt_state = _optimizer(config).init(params)
    state = {"p": params, "o": opt_state}

    def epoch(key):  # train_epoch donates its params: feed it each call's output
        state["p"], state["o"], loss = train_epoch(
            state["p"], state["o"], boot, x, y, key, config, config.batch_size
        )
        return loss

    seconds = _seconds(epoch, jax.random.PRNGKey(3))
    samples = (n // config.batch_size) * config.batch_size
    return {"samples_per_s": samples / seconds, "samples": samples, "seconds": seconds}


def rollouts(algo: str) -> dict:
    from shiftrl.addons import AddOnContext

    learner = _learner(algo, 1000)
    addon = _addon(algo, 1000)
    state = addon.init(jax.random.PRNGKey(0), learner.spec)
    ctx = AddOnContext(learner, learner.init(jax.random.PRNGKey(1)), (_data(100_000),))
    round_ = jax.jit(lambda s, k: addon.rollout(s, ctx, k)[1])
    seconds = _seconds(round_, state, jax.random.PRNGKey(2))
    work = ROLLOUT_STARTS * HORIZON
    return {"transitions_per_s": work / seconds, "transitions": work, "seconds": seconds}


def policy_updates(algo: str, steps: int) -> dict:
    from shiftrl.core.types import TARGET
    from shiftrl.training.loop import SamplerSpec, init_carry, make_train_chunk

    learner = _learner(algo, 10 * steps)
    addon = _addon(algo, rollout_every=10 * steps)  # one round at step 0, in the warm-up
    addons = (addon,)
    chunk = make_train_chunk(learner, addons, SamplerSpec((BATCH,), (TARGET,)))
    carry = init_carry(learner, addons, learner.spec, seed=0)
    data = (_data(100_000),)
    carry, _ = chunk(carry, data, steps)  # compile, the rollout round, warm-up
    jax.block_until_ready(carry)
    seconds = float("inf")
    for _ in range(3):  # best of three, as the fused loops
        t0 = time.perf_counter()
        carry, metrics = chunk(carry, data, steps)
        jax.block_until_ready((carry, metrics))
        seconds = min(seconds, time.perf_counter() - t0)
    return {"updates_per_s": steps / seconds, "steps": steps, "seconds": seconds}


def run_mb_throughput(algo: str, steps: int = 500) -> dict:
    """The three phases of `algo` (mopo | mobile), ours and the fused ceiling's."""
    from shiftrl.bench.fused_mb import fused_model_epoch, fused_rollout, fused_sac

    if algo == "mobile":
        steps = max(steps // 5, 50)  # ~10x the work per update (N x K target-Q samples)
    phases = [
        ("dynamics training", "samples_per_s", model_training(),
         fused_model_epoch(N_MODEL_DATA, OBS_DIM, ACT_DIM)),
        ("rollouts", "transitions_per_s", rollouts(algo),
         fused_rollout(ROLLOUT_STARTS, HORIZON, OBS_DIM, ACT_DIM)),
        ("policy updates", "updates_per_s", policy_updates(algo, steps),
         fused_sac(steps, OBS_DIM, ACT_DIM, mobile=algo == "mobile")),
    ]  # fmt: skip
    rows = []
    for phase, unit, ours, fused in phases:
        rows.append(
            {
                "phase": phase,
                "unit": unit.replace("_per_s", "/s"),
                "shiftrl": ours[unit],
                "fused": fused[unit],
                "shiftrl_ratio": ours[unit] / fused[unit],
                "shiftrl_detail": ours,
                "fused_detail": fused,
            }
        )
    return {
        "algo": algo,
        "machine": machine(),
        "sizes": {
            "obs_dim": OBS_DIM,
            "act_dim": ACT_DIM,
            "ensemble": "7 members, 4x200 Swish, batch 256",
            "rollouts": f"{ROLLOUT_STARTS} starts x {HORIZON} steps",
            "policy": "SAC 2x256, batch 256, 5% real rows",
        },
        "phases": rows,
    }


@dataclasses.dataclass(frozen=True)
class RunCost:
    """A run's wall time on the measured machine, phase by phase (seconds)."""

    dynamics: float
    rollouts: float
    policy: float

    @property
    def total(self) -> float:
        return self.dynamics + self.rollouts + self.policy


def run_cost(
    report: dict,
    transitions: int,
    model_epochs: int,
    steps: int,
    rollout_every: int = 1000,
    starts: int = ROLLOUT_STARTS,
    horizon: int = HORIZON,
) -> RunCost:
    """Estimated seconds of a run from a `run_mb_throughput` report: `model_epochs` over
    `transitions`, `steps` policy updates with a rollout round every `rollout_every`."""
    rate = {row["phase"]: row["shiftrl"] for row in report["phases"]}
    rounds = -(-steps // rollout_every)
    return RunCost(
        dynamics=model_epochs * transitions / rate["dynamics training"],
        rollouts=rounds * starts * horizon / rate["rollouts"],
        policy=steps / rate["policy updates"],
    )


def print_mb_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    m = report["machine"]
    table = Table(
        title=f"{report['algo']}: cost per phase, hopper sizes ({m['cores']} cores, {m['backend']})"
    )
    for col in ("phase", "unit", "shiftrl", "fused JAX", "shiftrl / fused"):
        table.add_column(col)
    for row in report["phases"]:
        table.add_row(
            row["phase"],
            row["unit"],
            f"{row['shiftrl']:,.0f}",
            f"{row['fused']:,.0f}",
            f"{row['shiftrl_ratio']:.2f}x",
        )
    Console().print(table)
