"""Each learner learns a short-horizon task with a known optimal policy and beats a
random policy by a clear margin (normalized score: random = 0, optimal = 100)."""

from __future__ import annotations

import numpy as np
import pytest

import shiftrl
from shiftrl.envs.toy import POINT_REACH_ID, TOY_REFERENCE
from shiftrl.training.evaluation import run_episodes
from tests.conftest import FAST_RUN, tiny_overrides

# BC imitates data that is half random actions, so its bar is lower than the RL learners'.
THRESHOLDS = {"bc": 50.0, "td3bc": 75.0, "iql": 70.0, "cql": 70.0}


def test_random_policy_scores_near_zero(point_reach_data):
    from shiftrl.data.preprocess import fit_preprocessor
    from shiftrl.learners import BCConfig

    pre = fit_preprocessor([point_reach_data], BCConfig())
    rng = np.random.default_rng(0)
    returns = run_episodes(
        lambda o: rng.uniform(-1, 1, (len(o), 1)), pre, POINT_REACH_ID, 200, seed=1
    )
    low, high = TOY_REFERENCE[POINT_REACH_ID]
    assert abs(100 * (returns.mean() - low) / (high - low)) < 10


@pytest.mark.parametrize("algo", ["bc", "td3bc", "iql", "cql"])
def test_learner_solves_point_reach(algo, point_reach_data, tmp_path):
    run = shiftrl.train(
        algo,
        point_reach_data,
        steps=1500,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / algo,
        overrides=tiny_overrides(algo, eval_every=1500, **FAST_RUN),
        progress=False,
    )
    score = run.score("final")
    assert score > THRESHOLDS[algo], f"{algo} normalized score {score:.1f}"
    # the saved policy reproduces the logged evaluation
    policy = shiftrl.load_policy(run.dir)
    res = policy.evaluate(POINT_REACH_ID, episodes=20, seed=10_000)
    assert res.normalized == pytest.approx(score, abs=1e-3)
