"""MAPLE (learners/maple.py + addons/maple.py) on a toy with two dynamics: the point of
PointReach whose actuator is reversed in half the data (`PointReach-flipped`), so the best
action depends on dynamics only the history shows. The recurrent learner beats its
non-recurrent counterpart there, a linear probe reads the dynamics off its context, the
recurrent state starts afresh at every episode (stored segment states and evaluation),
rollouts keep one elite per trajectory, and MAPLE + SRPO / + DARA train from the CLI and
resume."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import shiftrl
from shiftrl.addons import AddOnContext, MAPLEModel
from shiftrl.addons.rollouts import Prepared
from shiftrl.core.types import (
    MODEL,
    SEGMENT_HIDDEN_POLICY,
    SEGMENT_PREV_ACTION,
    SEGMENT_VALID,
    SOURCE,
    TARGET,
)
from shiftrl.data.collect import collect
from shiftrl.data.dataset import DatasetMetadata
from shiftrl.data.preprocess import fit_preprocessor
from shiftrl.dynamics import EnsembleConfig
from shiftrl.dynamics.ensemble import DynamicsModel, init_params
from shiftrl.envs.toy import POINT_REACH_FLIPPED_ID, POINT_REACH_ID, TOY_REFERENCE
from shiftrl.learners import LearnerSpec, get_learner
from shiftrl.training import checkpoint
from shiftrl.training.evaluation import RecurrentPolicy, run_episodes
from shiftrl.training.loop import SamplerSpec, to_device
from tests.conftest import Interrupt, stop_at

ENVS = (POINT_REACH_ID, POINT_REACH_FLIPPED_ID)
LEARN = {"hidden": (32, 32), "policy_lr": 1e-3, "qf_lr": 1e-3, "batch_size": 32}
CONTEXT = {"context_units": 32, "context_embedding": 8}


def uniform(obs, rng):
    return rng.uniform(-1.0, 1.0, (len(obs), 1))


def toy_data(env_id: str, name: str):
    low, high = TOY_REFERENCE[env_id]
    meta = DatasetMetadata(name=name, env_id=env_id, ref_min_score=low, ref_max_score=high)
    return collect(env_id, uniform, 4000, num_envs=8, seed=0, metadata=meta)


@pytest.fixture(scope="module")
def two_dynamics():
    return toy_data(POINT_REACH_ID, "point/random"), toy_data(POINT_REACH_FLIPPED_ID, "flip/random")


@pytest.fixture(scope="module")
def trained(two_dynamics, tmp_path_factory):
    """MAPLE on real segments only (real_ratio 1: no model, the recurrent learner alone) and
    SAC, the same networks without context, on the same mixed data and budget."""
    target, source = two_dynamics
    out = tmp_path_factory.mktemp("runs")
    common = dict(
        sources=[source],
        steps=2000,
        eval_envs=ENVS,
        progress=False,
        eval_every=2000,
        eval_episodes=20,
        source_fraction=0.5,
    )
    maple = shiftrl.train(
        "maple",
        target,
        out=out / "maple",
        preset="tiny",
        overrides={
            **LEARN,
            **CONTEXT,
            "maple-model.real_ratio": 1.0,
            "maple-model.refresh_every": 200,
        },
        **common,
    )
    sac = shiftrl.train("sac", target, out=out / "sac", overrides=LEARN, **common)
    return maple, sac


def test_maple_beats_its_non_recurrent_counterpart(trained):
    """Without history the best a policy can do is hedge (optimal: -1.7 per episode in
    either dynamics; pushing towards 0 in the wrong one costs up to -20)."""
    maple, sac = trained
    m, s = maple.rows[-1]["return"], sac.rows[-1]["return"]
    print(f"mean return over the two dynamics: MAPLE {m:.2f}, SAC {s:.2f}")
    assert m > s + 2.0, (m, s)
    for env in ENVS:  # good in each dynamics, not only on average
        assert maple.rows[-1][f"eval/{env}/return"] > -5.0


def episode_contexts(policy, env_id: str, n: int, seed: int) -> np.ndarray:
    """The policy encoder's z at steps 2..9 of n episodes in env_id (the policy acting)."""
    learner, state = policy.learner, policy.state
    envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync")
    obs, _ = envs.reset(seed=seed)
    carry, out = learner.initial_carry(n), []
    prev = np.zeros((n, 1), np.float32)
    for t in range(9):
        o, reset = policy.pre.obs(obs), np.full(n, t == 0)
        _, z = learner.context_step(state, carry, o, prev, reset)
        carry, action = learner.act_step(state, carry, o, prev, reset)
        if t >= 2:
            out.append(np.asarray(z))
        prev = np.asarray(action)
        obs, *_ = envs.step(policy.pre.action_to_env(prev))
    envs.close()
    return np.concatenate(out)


def test_linear_probe_on_the_context_separates_the_dynamics(trained):
    policy = trained[0].policy
    z = [episode_contexts(policy, env, 16, seed) for seed, env in enumerate(ENVS)]
    x = np.concatenate(z)
    y = np.concatenate([np.zeros(len(z[0])), np.ones(len(z[1]))])
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[: len(x) // 2], order[len(x) // 2 :]
    features = np.hstack([x, np.ones((len(x), 1))])
    w, *_ = np.linalg.lstsq(features[train], 2 * y[train] - 1, rcond=None)
    accuracy = np.mean((features[test] @ w > 0) == (y[test] > 0))
    print(f"linear probe accuracy on held-out steps: {accuracy:.3f}")
    assert accuracy > 0.9, accuracy  # chance: 0.5


def test_evaluation_resets_the_recurrent_state_at_episode_start(trained):
    policy = trained[0].policy
    learner = policy.learner
    step = jax.jit(learner.act_step)
    fresh = RecurrentPolicy(step, learner.initial_carry, policy.state, 1)
    used = RecurrentPolicy(step, learner.initial_carry, policy.state, 1)
    for _ in range(5):  # leave a history behind
        used(np.full((4, 1), 1.5, np.float32))
    a = run_episodes(fresh, policy.pre, POINT_REACH_FLIPPED_ID, 4, seed=3)
    b = run_episodes(used, policy.pre, POINT_REACH_FLIPPED_ID, 4, seed=3)
    np.testing.assert_array_equal(a, b)
    # an episode's first action is the no-history action
    used.reset(2)
    obs = np.array([[0.5], [-1.0]], np.float32)
    np.testing.assert_allclose(used(obs), np.asarray(learner.act(policy.state, obs)), atol=1e-6)


# -- the segment data path ------------------------------------------------------------------
H = 4  # 10-step episodes -> segments of 4, 4, 2 steps


@pytest.fixture(scope="module")
def segments(two_dynamics):
    """A MAPLE add-on prepared on the two datasets (no model), its learner and state."""
    datasets = list(two_dynamics)
    learner_cls = get_learner("maple")
    config = dataclasses.replace(learner_cls.preset("tiny"), **CONTEXT)
    learner = learner_cls(config, LearnerSpec(1, 1, 100))
    addon = MAPLEModel(horizon=H, real_ratio=1.0, model_members=2, model_elites=1)
    addon = addon.bind(learner)
    pre = fit_preprocessor(datasets, config)
    addon = addon.prepare(datasets, pre, progress=False)
    data = to_device([shiftrl_arrays(d, pre) for d in datasets])
    learner_state = learner.init(jax.random.PRNGKey(0))
    state = addon.init(jax.random.PRNGKey(1), learner.spec)
    ctx = AddOnContext(learner, learner_state, data, SamplerSpec((3, 2), (TARGET, SOURCE)))
    state = jax.jit(lambda s: addon.refresh(s, ctx))(state)
    return addon, learner, learner_state, state, ctx, datasets, pre


def shiftrl_arrays(dataset, pre):
    from shiftrl.data.preprocess import apply

    return apply(dataset, pre)


def test_stored_states_restart_at_every_episode(segments):
    """The refresh runs the encoders over whole episodes with a reset at each start: a
    segment that opens an episode starts from zero, the next one from the state after the
    first H steps of its own episode only (not the episode before it)."""
    addon, learner, learner_state, state, ctx, datasets, pre = segments
    table = addon.tables[0]
    hidden = np.asarray(state["segments"][0]["hidden_policy"])
    assert np.all(hidden[table.segment_block == 0] == 0.0)
    e = 7  # an episode in the middle of the data
    second = np.flatnonzero((table.segment_episode == e) & (table.segment_block == 1))[0]
    start = int(table.episode_start[e])
    data = ctx.data[0]
    carry = learner.initial_carry(1)
    for t in range(H):
        prev = data["action"][start + t - 1 : start + t] if t else jnp.zeros((1, 1))
        obs, reset = data["obs"][start + t][None], jnp.array([t == 0])
        carry, _ = learner.context_step(learner_state, carry, obs, prev, reset)
    np.testing.assert_allclose(hidden[second], np.asarray(carry["policy"][0]), atol=1e-5)
    assert np.abs(hidden[second]).sum() > 0


def test_segment_batches_keep_episode_structure(segments):
    addon, learner, learner_state, state, ctx, datasets, pre = segments
    batch = addon.sample_batch(state, None, ctx, jax.random.PRNGKey(5))
    assert batch.segments == 5 and batch.size == 5 * H
    assert list(np.asarray(batch.domain)[::H]) == [TARGET] * 3 + [SOURCE] * 2
    valid = np.asarray(batch.extras[SEGMENT_VALID]).reshape(5, H)
    assert set(valid.sum(1)) <= {2.0, 4.0} and np.all(np.diff(valid, axis=1) <= 0)
    obs = np.asarray(batch.obs).reshape(5, H)
    nxt = np.asarray(batch.next_obs).reshape(5, H)
    act = np.asarray(batch.action).reshape(5, H)
    prev = np.asarray(batch.extras[SEGMENT_PREV_ACTION]).reshape(5, H)
    for i in range(5):
        n = int(valid[i].sum())
        np.testing.assert_allclose(nxt[i, : n - 1], obs[i, 1:n])  # consecutive steps
        np.testing.assert_allclose(prev[i, 1:n], act[i, : n - 1])  # a_{t-1}
    assert batch.extras[SEGMENT_HIDDEN_POLICY].shape == (5, CONTEXT["context_units"])
    # the learner trains on it, and on a plain transition batch (length-1 segments)
    new, metrics = jax.jit(learner.update)(learner_state, batch, jax.random.PRNGKey(0))
    assert np.isfinite(float(metrics["critic/loss"])) and int(new.step) == 1


def one_d_model(dx=(0.3, -0.3)) -> DynamicsModel:
    """Member k moves x by dx[k] whatever the action, reward 5, no noise."""
    config = EnsembleConfig(members=2, elites=2, hidden=(4,))
    params = jax.tree.map(jnp.zeros_like, init_params(config, 1, 1, jax.random.PRNGKey(0)))
    mean = jnp.array([[dx[0], 5.0], [dx[1], 5.0]])
    params["layers"][-1]["b"] = jnp.concatenate([mean, jnp.full((2, 2), -30.0)], -1)
    params["max_logvar"], params["min_logvar"] = jnp.full(2, 0.5), jnp.full(2, -40.0)
    return DynamicsModel(
        params=params,
        input_mean=jnp.zeros(2),
        input_std=jnp.ones(2),
        elites=jnp.array([0, 1], jnp.int32),
        holdout_mse=jnp.zeros(2),
        config=config,
        obs_dim=1,
        act_dim=1,
    )


def test_rollouts_follow_one_elite_per_trajectory(segments):
    addon, learner, learner_state, state, ctx, datasets, pre = segments
    rolling = dataclasses.replace(addon, real_ratio=0.25, rollout_batch=32, retain_epochs=2)
    for key in ("_tables", "_bounds", "_reward_units", "_context_hidden"):
        object.__setattr__(rolling, key, getattr(addon, key))
    object.__setattr__(
        rolling,
        "_prepared",
        Prepared(
            one_d_model(),
            pre.obs_mean,
            pre.obs_std,
            np.zeros(1, np.float32),
            np.ones(1, np.float32),
            1.0,
            0.0,
            "never",
            {},
        ),
    )
    full = rolling.init(jax.random.PRNGKey(2), learner.spec)
    full = {**full, "segments": state["segments"], "model": one_d_model()}
    full, metrics = jax.jit(lambda s: rolling.rollout(s, ctx, jax.random.PRNGKey(3)))(full)
    pool = jax.tree.map(np.asarray, full["pool"])
    raw = pool["obs"] * pre.obs_std + pre.obs_mean
    raw_next = pool["next_obs"] * pre.obs_std + pre.obs_mean
    step = (raw_next - raw)[:32, :, 0]  # [rollouts, H]
    assert np.allclose(step, step[:, :1], atol=1e-4)  # one member for the whole rollout
    assert sorted({round(float(x), 3) for x in step[:, 0]}) == [-0.3, 0.3]  # both elites drawn
    # model reward 5 clipped to the data's maximum (0: rewards are -|x|), no penalty
    r_high = float(np.max(np.concatenate([d.rewards for d in datasets])))
    np.testing.assert_allclose(pool["reward"][:32], r_high, atol=1e-4)
    assert np.all(pool["valid"][:32] == 1.0) and float(metrics["rollout_length"]) == H
    # the mixed batch: round(0.25 * 5) real segments, the rest from the pool, labelled MODEL
    real = rolling.sample_batch(full, None, ctx, jax.random.PRNGKey(4))
    mixed = rolling.transform_batch(full, real, ctx, jax.random.PRNGKey(5))
    domains = np.asarray(mixed.domain)[::H]
    assert mixed.segments == 5 and list(domains).count(MODEL) == 4


# -- end to end: CLI, add-ons, resume -------------------------------------------------------
MODEL_SETTINGS = [
    "maple-model.horizon=4",
    "maple-model.rollout_batch=32",
    "maple-model.rollout_every=5",
    "maple-model.refresh_every=5",
    "maple-model.model_members=2",
    "maple-model.model_elites=2",
    "maple-model.model_hidden=8",
    "maple-model.model_max_epochs=2",
    "maple-model.real_ratio=0.5",
]


def test_maple_with_srpo_and_dara_resumes_from_the_cli(two_dynamics, tmp_path):
    """MAPLE with SRPO's and DARA's add-ons (one run, so one compilation, exercises both on
    the segment path) is killed after its first evaluation and resumed by `shiftrl train
    --resume`: scores in each dynamics and their mean, add-on metrics, the policy loads."""
    from shiftrl.cli import app
    from shiftrl.data.io import save_dataset

    target, source = (tmp_path / "target.npz", tmp_path / "source.npz")
    for data, path in zip(two_dynamics, (target, source), strict=True):
        save_dataset(data, path)  # files, so the CLI can load them again to resume
    settings = [*MODEL_SETTINGS, "batch_size=8", "hidden=16,16"]
    with pytest.raises(Interrupt):
        shiftrl.train(
            "maple",
            target,
            sources=[source],
            steps=20,
            preset="tiny",
            addons=["srpo", "dara"],
            eval_envs=ENVS,
            overrides=[*settings, "eval_every=10", "eval_episodes=2"],
            progress=False,
            out=tmp_path / "run",
            callbacks=[stop_at(10)],
        )
    assert checkpoint.latest(tmp_path / "run").name == "step_0000000010.msgpack"
    result = CliRunner().invoke(
        app, ["train", "--resume", "--out", str(tmp_path / "run"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [10, 20]
    row = rows[-1]
    for key in ("addon/srpo/loss", "addon/dara/loss_sa", "critic/loss"):
        assert np.isfinite(row[key]), key
    assert row["addon/maple-model/buffer_size"] > 0
    # evaluated in each dynamics, and the mean over them
    assert row["return"] == pytest.approx(np.mean([row[f"eval/{e}/return"] for e in ENVS]))
    policy = shiftrl.load_policy(tmp_path / "run")  # without the data-sized add-on tables
    assert policy.learner.recurrent and policy.act(np.zeros((1, 1), np.float32)).shape == (1, 1)


def _rows(run_dir):
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
