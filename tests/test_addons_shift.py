"""DARA and SRPO do what their papers say on tiny problems with known answers:
- DARA's classifiers recover a known dynamics log-ratio (1-D linear dynamics with two
  slopes), with the right sign, and correct only source rewards;
- SRPO's discriminator ranks states by their true value in a small MDP, and the
  regularizer has the stated form;
- both plug into learners end to end through the add-on interface (API and CLI)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import shiftrl
from shiftrl.addons import DARA, SRPO
from shiftrl.addons.base import AddOnContext
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import SOURCE, TARGET, Batch
from shiftrl.envs.toy import POINT_REACH_ID, point_reach_optimal
from shiftrl.learners import BC, LearnerSpec
from tests.conftest import tiny_overrides

SIGMA, SLOPE_T, SLOPE_S = 0.3, 0.5, 1.0


def linear_transitions(n: int, slope: float, rng: np.random.Generator):
    s = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    s2 = (slope * s + 0.5 * a + rng.normal(0, SIGMA, (n, 1))).astype(np.float32)
    return s, a, s2


def true_log_ratio(s, a, s2):
    """log p_source(s'|s,a) - log p_target(s'|s,a) for the two Gaussian linear dynamics."""
    mu_t, mu_s = SLOPE_T * s + 0.5 * a, SLOPE_S * s + 0.5 * a
    return (((s2 - mu_t) ** 2 - (s2 - mu_s) ** 2) / (2 * SIGMA**2))[:, 0]


def batch_of(s, a, s2, domain):
    n = len(s)
    return Batch(
        jnp.asarray(s),
        jnp.asarray(a),
        jnp.zeros(n),
        jnp.asarray(s2),
        jnp.zeros(n),
        jnp.full(n, domain, jnp.int32),
    )


def train_dara(dara: DARA, steps: int = 3000):
    rng = np.random.default_rng(0)
    tgt, src = linear_transitions(20_000, SLOPE_T, rng), linear_transitions(20_000, SLOPE_S, rng)
    data = [jnp.asarray(np.concatenate([t, s])) for t, s in zip(tgt, src, strict=True)]
    domain = jnp.asarray(np.r_[np.full(20_000, TARGET), np.full(20_000, SOURCE)].astype(np.int32))
    state = dara.init(jax.random.PRNGKey(0), LearnerSpec(1, 1))

    def step(carry, _):
        st, key = carry
        key, k_idx, k_up = jax.random.split(key, 3)
        idx = jax.random.randint(k_idx, (256,), 0, 40_000)
        b = Batch(
            data[0][idx], data[1][idx], jnp.zeros(256), data[2][idx], jnp.zeros(256), domain[idx]
        )
        st, _ = dara.update(st, b, None, k_up)  # DARA reads nothing from the learner
        return (st, key), None

    (state, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))(
        (state, jax.random.PRNGKey(1))
    )
    return state


@pytest.fixture(scope="module")
def held_out_source():
    s, a, s2 = linear_transitions(2000, SLOPE_S, np.random.default_rng(5))
    return batch_of(s, a, s2, SOURCE), true_log_ratio(s, a, s2)


def test_dara_recovers_known_log_ratio(held_out_source):
    dara = DARA(noise_std=0.0, hidden=(64, 64), lr=1e-3)
    state = train_dara(dara)
    batch, truth = held_out_source
    pred = np.asarray(dara.delta_r(state, batch))
    assert np.corrcoef(pred, truth)[0, 1] > 0.95
    assert np.abs(pred - truth).mean() < 0.25  # true values span about [-3, 6]
    clear = np.abs(truth) > 0.5
    assert np.mean(np.sign(pred[clear]) == np.sign(truth[clear])) > 0.95


def test_dara_input_noise_shrinks_but_keeps_direction(held_out_source):
    """DARC's input noise (std 1.0, the default) smooths the classifiers: the estimate is
    pulled towards 0 but still points the right way."""
    dara = DARA(noise_std=1.0, hidden=(64, 64), lr=1e-3)
    state = train_dara(dara)
    batch, truth = held_out_source
    pred = np.asarray(dara.delta_r(state, batch))
    assert np.corrcoef(pred, truth)[0, 1] > 0.5
    assert np.abs(pred).mean() < np.abs(truth).mean()


def test_dara_corrects_only_source_rewards():
    dara = DARA(eta=0.5, clip=0.7, hidden=(8,))
    state = dara.init(jax.random.PRNGKey(3), LearnerSpec(1, 1))
    s, a, s2 = linear_transitions(16, SLOPE_T, np.random.default_rng(0))
    domain = jnp.asarray([TARGET, SOURCE] * 8, jnp.int32)
    batch = batch_of(s, a, s2, TARGET).replace(reward=jnp.arange(16.0), domain=domain)
    out = dara.transform_batch(state, batch, None, jax.random.PRNGKey(0))
    delta = np.asarray(dara.delta_r(state, batch))
    assert np.all(np.abs(delta) <= 0.7)
    is_src = np.asarray(domain) == SOURCE
    np.testing.assert_allclose(np.asarray(out.reward)[~is_src], np.arange(16.0)[~is_src])
    np.testing.assert_allclose(
        np.asarray(out.reward)[is_src], np.arange(16.0)[is_src] - 0.5 * delta[is_src], rtol=1e-6
    )


# -- SRPO ---------------------------------------------------------------------------------
def point_reach_value(x: np.ndarray, gamma: float = 0.99, horizon: int = 10) -> np.ndarray:
    """True value of PointReach states under the optimal policy (exact rollout)."""
    v, disc, x = np.zeros_like(x), 1.0, x.copy()
    for _ in range(horizon):
        x = np.clip(x + 0.3 * point_reach_optimal(x[:, None])[:, 0], -2, 2)
        v += disc * -np.abs(x)
        disc *= gamma
    return v


class TrueValueLearner:
    """A stand-in learner whose value estimate is the MDP's true value."""

    name = "oracle"

    def value(self, state, obs):
        x = obs[:, 0]
        return -jnp.abs(x)  # monotone in the true value; ranking is all SRPO uses


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_srpo_discriminator_ranks_states_by_value():
    srpo = SRPO(hidden=(32, 32), rho=0.3)
    state = srpo.init(jax.random.PRNGKey(0), LearnerSpec(1, 1))
    ctx = AddOnContext(TrueValueLearner(), None)

    def step(carry, _):
        st, key = carry
        key, k_s, k_up = jax.random.split(key, 3)
        obs = jax.random.uniform(k_s, (256, 1), minval=-2.0, maxval=2.0)
        b = Batch(
            obs, jnp.zeros((256, 1)), jnp.zeros(256), obs, jnp.zeros(256), jnp.zeros(256, jnp.int32)
        )
        st, _ = srpo.update(st, b, ctx, k_up)
        return (st, key), None

    (state, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=800))(
        (state, jax.random.PRNGKey(1))
    )
    grid = np.linspace(-2, 2, 201).astype(np.float32)
    logits = np.asarray(srpo.logit(state["disc"].params, jnp.asarray(grid[:, None])))
    assert spearman(logits, point_reach_value(grid)) > 0.9
    # D(s) > 1/2 roughly on the top-rho states: |x| below the 30% quantile of |U(-2, 2)|
    assert np.mean((logits > 0) == (np.abs(grid) < 0.6)) > 0.9


def test_srpo_ranks_states_by_a_trained_learners_own_value(point_reach_data):
    """The same claim with the value SRPO really uses: an IQL critic trained on PointReach
    data (mediocre behaviour), then the discriminator ranking its batches by IQL's V(s)."""
    from shiftrl.learners import IQL

    iql = IQL(IQL.Config(**tiny_overrides("iql", expectile=0.9)), LearnerSpec(1, 1, 3000))
    d = point_reach_data
    data = [jnp.asarray(x, jnp.float32) for x in (d.observations, d.actions, d.rewards)]
    data += [jnp.asarray(d.next_observations, jnp.float32), jnp.asarray(d.terminals, jnp.float32)]
    srpo = SRPO(hidden=(32, 32), rho=0.3)

    def step(carry, _):
        st, disc, key = carry
        key, k_i, k_up = jax.random.split(key, 3)
        i = jax.random.randint(k_i, (256,), 0, len(d))
        b = Batch(*(x[i] for x in data), jnp.zeros(256, jnp.int32))
        st, _ = iql.update_values(st, b)
        disc, _ = srpo.update(disc, b, AddOnContext(iql, st), k_up)
        return (st, disc, key), None

    carry = (iql.init(jax.random.PRNGKey(0)), srpo.init(jax.random.PRNGKey(1), LearnerSpec(1, 1)))
    (state, disc, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=3000))(
        (*carry, jax.random.PRNGKey(2))
    )
    grid = np.linspace(-2, 2, 201).astype(np.float32)
    truth = point_reach_value(grid)
    assert spearman(np.asarray(iql.value(state, jnp.asarray(grid[:, None]))), truth) > 0.8
    logits = np.asarray(srpo.logit(disc["disc"].params, jnp.asarray(grid[:, None])))
    assert spearman(logits, truth) > 0.8


def test_srpo_labels_and_forms():
    srpo = SRPO(rho=0.25)
    labels = np.asarray(srpo.labels(jnp.asarray([3.0, 1.0, 4.0, 1.5, 9.0, 2.0, 6.0, 5.0])))
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 0, 1, 0])  # top 2 of 8
    obs = jnp.asarray(np.linspace(-3, 3, 50, dtype=np.float32)[:, None])
    for form, lo, hi in [
        ("paper", -0.1 * 10, 0.1 * 10),
        ("clipped", 0.1 * np.log(0.1), 0.1 * np.log(10)),
    ]:
        s = SRPO(form=form, lam=0.1, hidden=(8,))
        st = s.init(jax.random.PRNGKey(0), LearnerSpec(1, 1))
        reg = np.asarray(s.regularizer(st, obs))
        assert reg.min() >= lo - 1e-6 and reg.max() <= hi + 1e-6
        logit = np.asarray(s.logit(st["disc"].params, obs))
        expected = 0.1 * (
            np.clip(logit, -10, 10) if form == "paper" else np.log(np.clip(logit, 0.1, 10))
        )
        np.testing.assert_allclose(reg, expected, rtol=1e-5, atol=1e-6)


def test_srpo_bonus_goes_to_every_reward_without_gradient():
    """SRPO regularizes the state distribution over the whole mix: target and source rows
    alike get lam * log(D(s) / (1 - D(s))) of their own state s, and nothing else changes."""
    srpo = SRPO(hidden=(8,), lam=0.3)
    state = srpo.init(jax.random.PRNGKey(0), LearnerSpec(2, 1))
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(16, 2)).astype(np.float32))
    rew = jnp.asarray(rng.normal(size=16).astype(np.float32))
    domain = jnp.asarray(np.r_[np.full(8, TARGET), np.full(8, SOURCE)].astype(np.int32))
    b = Batch(obs, jnp.zeros((16, 1)), rew, obs[::-1], jnp.zeros(16), domain)
    out = srpo.transform_batch(state, b, AddOnContext(TrueValueLearner(), None), None)
    bonus = np.asarray(srpo.regularizer(state, obs))
    assert np.abs(bonus).min() > 0  # a real, per-state bonus (random-init discriminator)
    np.testing.assert_allclose(out.reward, np.asarray(rew) + bonus, rtol=1e-6)
    for field in ("obs", "action", "next_obs", "terminal", "domain"):
        np.testing.assert_array_equal(getattr(out, field), getattr(b, field))
    grad = jax.grad(
        lambda r: srpo.transform_batch(state, b.replace(reward=r), None, None).reward.sum()
    )
    np.testing.assert_allclose(grad(rew), 1.0)  # the bonus is a constant to the learner

    def with_params(p):
        return {**state, "disc": state["disc"].replace(params=p)}

    g_params = jax.grad(lambda p: srpo.transform_batch(with_params(p), b, None, None).reward.sum())(
        state["disc"].params
    )
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(g_params))


def test_srpo_needs_a_value_estimate():
    with pytest.raises(ConfigError, match="bc has none"):
        SRPO().check(BC(BC.Config(), LearnerSpec(1, 1)))


# -- end to end -----------------------------------------------------------------------------
def test_addons_train_end_to_end(point_reach_data, tmp_path):
    run = shiftrl.train(
        "td3bc",
        point_reach_data,
        sources=[point_reach_data],
        steps=200,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / "run",
        addons=["dara", shiftrl.addons.SRPO(hidden=(16,))],
        overrides=tiny_overrides(
            "td3bc",
            eval_every=200,
            batch_size=64,
            eval_episodes=4,
            **{"dara.eta": 0.3, "dara.hidden": (16,)},
        ),
        target_fraction=0.5,
        progress=False,
    )
    meta = json.loads((run.dir / "config.json").read_text())
    names = [a["name"] for a in meta["config"]["addons"]]
    assert names == ["dara", "srpo"] and meta["config"]["addons"][0]["eta"] == 0.3
    assert meta["datasets"][0]["transitions"] < len(point_reach_data)  # the 50% target subset
    row = run.rows[-1]
    assert "addon/dara/loss_sas" in row and "addon/srpo/accuracy" in row
    # what a reader needs to judge the add-ons, in every evaluation row
    for key in ("acc_sas", "acc_sa", "delta_r_source", "delta_r_source_std", "delta_r_target"):
        assert f"addon/dara/{key}" in row
    assert 0.0 <= row["addon/dara/acc_sa"] <= 1.0
    for key in ("bonus_abs", "reward_abs", "bonus_to_reward", "saturated"):
        assert f"addon/srpo/{key}" in row
    # the raw-unit scales come from the run's preprocessing and are checkpointed
    from flax import serialization

    from shiftrl.training import checkpoint

    payload = serialization.msgpack_restore(checkpoint.latest(run.dir).read_bytes())
    units = payload["carry"]["addons"]["dara"]["units"]
    np.testing.assert_allclose(units["obs"], meta["preprocessor"]["obs_std"], rtol=1e-6)
    assert float(units["reward"]) == meta["preprocessor"]["reward_scale"]


# BRAC-p clones the behaviour policy and BEAR warms up before their main phase: keep both
# inside the 40-step runs below.
PHASES = {"bracp": {"behavior_steps": 10}, "bear": {"warmup_steps": 10}}


@pytest.mark.parametrize("algo", ["iql", "cql", "bcq", "bear", "bracp", "awr"])
def test_dara_and_srpo_plug_into_every_learner_with_rewards(algo, point_reach_data, tmp_path):
    """The add-on interface is the learners' own: DARA's classifiers and SRPO's
    discriminator train inside each learner's compiled loop (TD3+BC: the test above)."""
    run = shiftrl.train(
        algo,
        point_reach_data,
        sources=[point_reach_data],
        steps=40,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / algo,
        addons=[DARA(hidden=(8,)), SRPO(hidden=(8,))],
        overrides=tiny_overrides(
            algo, eval_every=40, batch_size=32, eval_episodes=2, **PHASES.get(algo, {})
        ),
        progress=False,
    )
    row = run.rows[-1]
    for key in ("addon/dara/loss_sas", "addon/dara/acc_sas", "addon/srpo/accuracy"):
        assert np.isfinite(row[key]), key
    assert np.isfinite(run.score("final"))


def test_dara_refuses_learners_without_rewards_and_runs_without_sources(point_reach_data):
    with pytest.raises(ConfigError, match="dara corrects source rewards, which bc does not use"):
        DARA().check(BC(BC.Config(), LearnerSpec(1, 1)))
    with pytest.raises(ConfigError, match="dara acts on source-dynamics data and the run has none"):
        shiftrl.train("iql", point_reach_data, steps=10, addons=["dara"], progress=False)


def test_addon_cli_and_errors(point_reach_data, tmp_path):
    from shiftrl.cli import app
    from shiftrl.data.io import save_dataset

    path = save_dataset(point_reach_data, tmp_path / "d.npz")
    runner = CliRunner()
    base = [
        "train",
        "--algo",
        "bc",
        "--dataset",
        str(path),
        "--steps",
        "100",
        "--no-progress",
        "--out",
        str(tmp_path / "r"),
    ]
    result = runner.invoke(app, [*base, "--addon", "srpo"])
    assert result.exit_code == 2 and "bc has none" in result.output
    result = runner.invoke(app, [*base, "--set", "dara.eta=1"])
    assert result.exit_code == 2 and "add-on 'dara' is not in this run" in result.output
    result = runner.invoke(app, [*base, "--addon", "dara", "--set", "dara.bogus=1"])
    assert result.exit_code == 2 and "unknown setting 'bogus' for add-on dara" in result.output
    result = runner.invoke(app, [*base, "--addon", "nope"])
    assert result.exit_code == 2 and "unknown add-on 'nope'" in result.output
    result = runner.invoke(app, [*base, "--addon", "dara"])
    assert result.exit_code == 2 and "which bc does not use" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
