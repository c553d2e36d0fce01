"""Shared fixtures: one tiny dataset and one tiny network size for the whole suite, so the
number of distinct jit compilations stays small."""

from __future__ import annotations

import numpy as np
import pytest

from shiftrl.data.collect import collect
from shiftrl.data.dataset import DatasetMetadata
from shiftrl.envs.toy import POINT_REACH_ID, TOY_REFERENCE, point_reach_optimal


@pytest.fixture(scope="session", autouse=True)
def private_data_cache(tmp_path_factory):
    """Datasets the tests make go to a cache of the session's own, never the user's
    ~/.shiftrl/data (tests that need another one set SHIFTRL_DATA themselves)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SHIFTRL_DATA", str(tmp_path_factory.mktemp("shiftrl-data")))
    yield
    mp.undo()


TINY = (32, 32)
# hidden sizes for every learner: keys a learner lacks are dropped by `tiny_overrides`
TINY_NETS = {
    "actor_hidden": TINY,
    "critic_hidden": TINY,
    "hidden": TINY,
    "vae_hidden": TINY,
    "behavior_hidden": TINY,
}
FAST_RUN = {"batch_size": 64, "eval_episodes": 20}


class Interrupt(Exception):
    """Raised by `stop_at`'s callback: a run killed at a known step."""


def stop_at(step: int):
    """A training callback that kills the run at its evaluation row of `step`."""

    def callback(row: dict) -> None:
        if row["step"] == step:
            raise Interrupt

    return callback


def tiny_overrides(algo: str, **extra) -> dict:
    from shiftrl.learners import get_learner

    fields = get_learner(algo).config_fields()
    out = {k: v for k, v in TINY_NETS.items() if k in fields}
    if algo == "cql":
        out["policy_lr"] = 1e-3  # CORL's 3e-5 is tuned for 1M steps; tests run ~1k
    out.update(extra)
    return out


def point_reach_behaviour(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half noisy-optimal, half uniform random: mediocre data with good actions in it."""
    good = point_reach_optimal(obs) + rng.normal(0.0, 0.5, (len(obs), 1))
    rand = rng.uniform(-1.0, 1.0, (len(obs), 1))
    return np.where(rng.random((len(obs), 1)) < 0.5, rand, good)


@pytest.fixture(scope="session")
def point_reach_data():
    low, high = TOY_REFERENCE[POINT_REACH_ID]
    meta = DatasetMetadata(
        name="point-reach/mixed", env_id=POINT_REACH_ID, ref_min_score=low, ref_max_score=high
    )
    return collect(POINT_REACH_ID, point_reach_behaviour, 4000, num_envs=8, seed=0, metadata=meta)


# -- a fixed batch for hand-computed loss checks (obs dim 3, action dim 2) ----------------
FIXED_B = 8


def _fixed_spec():
    from shiftrl.learners import LearnerSpec

    return LearnerSpec(obs_dim=3, act_dim=2, total_steps=100)


FIXED_SPEC = _fixed_spec()


def np_(x):
    return np.asarray(x, np.float64)


@pytest.fixture(scope="module")
def batch():
    """Random states and actions with two terminal rows, the same in every test module."""
    import jax
    import jax.numpy as jnp

    from shiftrl.core.types import Batch

    k = jax.random.split(jax.random.PRNGKey(42), 4)
    return Batch(
        obs=jax.random.normal(k[0], (FIXED_B, 3)),
        action=jnp.tanh(jax.random.normal(k[1], (FIXED_B, 2))),
        reward=jax.random.normal(k[2], (FIXED_B,)),
        next_obs=jax.random.normal(k[3], (FIXED_B, 3)),
        terminal=jnp.array([0, 1, 0, 0, 1, 0, 0, 0], jnp.float32),
        domain=jnp.zeros(FIXED_B, jnp.int32),
    )
