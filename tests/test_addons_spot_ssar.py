"""SPOT and SSAR do what their papers say on tiny problems, not only run:

- SPOT's behaviour-density estimate ranks in-support actions above out-of-support ones,
  its penalty enters the actor loss with weight lambda, and lambda anneals to 20% online;
- SSAR's beta(s) rises on states where the policy leaves the threshold and falls where it
  stays inside; n follows its schedule and freezes; beta(s) / base scales the learner's
  term only on trusted samples; the beta decay online is linear (TD3+BC) or cosine (CQL);
- both learn PointReach through the ordinary trainer and fine-tune online.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shiftrl
from shiftrl.addons import SPOT, SSAR, AddOnContext
from shiftrl.core.errors import ConfigError
from shiftrl.core.types import Batch
from shiftrl.envs.toy import POINT_REACH_ID
from shiftrl.learners import CQL, TD3BC, LearnerSpec
from tests.conftest import FAST_RUN, tiny_overrides

B = 256


def line_batch(rng, noise=0.05) -> Batch:
    """1-D states, behaviour actions on the line a = 0.5 s (plus a little noise)."""
    k_s, k_n = jax.random.split(rng)
    s = jax.random.uniform(k_s, (B, 1), minval=-1, maxval=1)
    a = jnp.clip(0.5 * s + noise * jax.random.normal(k_n, (B, 1)), -1, 1)
    z = jnp.zeros(B)
    return Batch(s, a, z, s, z, jnp.zeros(B, jnp.int32))


# -- SPOT --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_spot():
    spot = SPOT(hidden=(64, 64), lam=0.3)
    state = spot.init(jax.random.PRNGKey(0), LearnerSpec(1, 1))
    update = jax.jit(lambda st, k: spot.update(st, line_batch(k), None, jax.random.fold_in(k, 1)))
    for i in range(1500):
        state, _ = update(state, jax.random.PRNGKey(i))
    return spot, state


@pytest.mark.parametrize("density", ["elbo", "iwae"])
def test_spot_density_ranks_in_support_actions_higher(trained_spot, density):
    spot, state = trained_spot
    spot = SPOT(hidden=spot.hidden, density=density, num_samples=10)
    s = jnp.linspace(-0.9, 0.9, 64)[:, None]
    rng = jax.random.PRNGKey(7)
    inside = spot.neg_log_density(state["vae"].params, s, 0.5 * s, rng)
    outside = spot.neg_log_density(state["vae"].params, s, jnp.clip(0.5 * s + 0.6, -1, 1), rng)
    opposite = spot.neg_log_density(state["vae"].params, s, -0.5 * s - 0.4, rng)
    # lower -log density = more likely under the behaviour policy
    assert float(jnp.mean(inside < outside)) > 0.95
    assert float(jnp.mean(inside < opposite)) > 0.95
    assert float(inside.mean()) < float(outside.mean()) - 0.05


def test_spot_hook_adds_the_support_term_and_lambda_anneals(trained_spot, batch):
    spot, state = trained_spot
    b = line_batch(jax.random.PRNGKey(3))
    terms, weights = spot.actor_hook(
        state, b, {"q": b.reward, "pi_action": b.action}, {"q": -1.0}, jax.random.PRNGKey(0)
    )
    assert set(terms) == {"q", "pi_action", "support"} and terms["support"].shape == (B,)
    assert float(weights["support"]) == pytest.approx(0.3)
    assert weights["q"] == -1.0  # the learner's own terms are untouched
    # official: lambda * max(0.2, 1 - t / 1e6), whatever the online length
    lam = [float(spot.online_step(state, jnp.asarray(t), 100)["lam"]) for t in (0, 100)]
    assert lam == pytest.approx([0.3, 0.3 * (1 - 100 / 1e6)])
    lam = [float(spot.online_step(state, jnp.asarray(t), 10**7)["lam"]) for t in (500_000, 10**6)]
    assert lam == pytest.approx([0.15, 0.06])
    corl = SPOT(hidden=spot.hidden, lam=0.3, online_lambda_steps=None)  # over the run's steps
    lam = [float(corl.online_step(state, jnp.asarray(t), 100)["lam"]) for t in (0, 50, 90, 100)]
    assert lam == pytest.approx([0.3, 0.15, 0.06, 0.06])  # linear, floored at 20%


# -- SSAR --------------------------------------------------------------------------------
class OffsetTD3BC(TD3BC):
    """A TD3+BC whose policy is the data line a = 0.5 s, shifted by `offset` where s > 0."""

    offset = 0.5

    def act(self, state, obs):
        return jnp.clip(0.5 * obs + jnp.where(obs > 0, self.offset, 0.0), -1, 1)


def tiny_td3bc(cls=TD3BC, **kw):
    return cls(TD3BC.Config(actor_hidden=(8,), critic_hidden=(8,), **kw), LearnerSpec(1, 1))


def test_ssar_beta_rises_where_the_policy_leaves_the_threshold():
    learner = tiny_td3bc(OffsetTD3BC)
    ssar = SSAR(select="none", hidden=(32, 32), lr=1e-3, update_every="learner").bind(learner)
    assert ssar.base == pytest.approx(1 / 2.5) and ssar.term == "bc"
    state = ssar.init(jax.random.PRNGKey(0), learner.spec)
    ctx = AddOnContext(learner, None)
    s = jnp.linspace(-0.9, 0.9, 20)[:, None]
    before = ssar.beta(state["beta"].params, s)
    update = jax.jit(lambda st, k: ssar.update(st, line_batch(k, noise=0.0), ctx, k))
    for i in range(300):
        state, metrics = update(state, jax.random.PRNGKey(i))
    after = ssar.beta(state["beta"].params, s)
    change = np.asarray(after - before)
    away, inside = change[np.asarray(s[:, 0]) > 0.1], change[np.asarray(s[:, 0]) < -0.1]
    assert (away > 0).all() and (inside < 0).all()
    assert float(after.max()) <= 1.5 * ssar.base + 1e-6  # bounded at 1.5x the base value


def test_ssar_n_follows_its_schedule_and_freezes():
    learner = tiny_td3bc(OffsetTD3BC)
    OffsetTD3BC.offset = 0.0
    try:
        # every action off by sqrt(0.05): d = 0.05, C_n = (0.1 n)^2 passes 0.05 at n = 2.4
        class Constant(TD3BC):
            def act(self, state, obs):
                return 0.5 * obs + jnp.sqrt(0.05)

        learner = tiny_td3bc(Constant)
        ssar = SSAR(
            select="none", hidden=(8,), update_period=5, max_n=3.0, update_every="learner"
        ).bind(learner)
        state = ssar.init(jax.random.PRNGKey(0), learner.spec)
        ctx = AddOnContext(learner, None)
        update = jax.jit(lambda st, k: ssar.update(st, line_batch(k, noise=0.0), ctx, k))
        ns = []
        for i in range(60):
            state, m = update(state, jax.random.PRNGKey(i))
            ns.append(float(m["n"]))
        # n grows by (3 - 1) / 10 every 5 steps until the threshold holds, then stays
        assert ns[3] == pytest.approx(1.0) and ns[4] == pytest.approx(1.2)
        assert ns[9] == pytest.approx(1.4)
        assert ns[-1] == pytest.approx(2.4) and bool(state["frozen"])
        assert ns.index(ns[-1]) < 40
    finally:
        OffsetTD3BC.offset = 0.5


def test_ssar_likelihood_threshold_sign_on_cql():
    learner = CQL(CQL.Config(hidden=(8,)), LearnerSpec(1, 1))
    ssar = SSAR(select="none", hidden=(8,)).bind(learner)
    assert ssar.threshold == "likelihood" and ssar.term == "cql" and ssar.base == 10.0
    state = learner.init(jax.random.PRNGKey(0))
    obs = jnp.linspace(-1, 1, 16)[:, None]
    mean, log_std = learner.policy_dist(state, obs)
    near = jnp.tanh(mean)
    far = jnp.clip(near + 6 * jnp.exp(log_std) + 0.5, -0.99, 0.99)
    ctx = AddOnContext(learner, state)
    z = jnp.zeros(16)
    gap = lambda a: ssar.tolerance_gap(jnp.asarray(1.0), Batch(obs, a, z, obs, z, z), ctx)  # noqa: E731
    assert (gap(near) > 0).all()  # the policy's own mean action: within tolerance
    assert (gap(far) < 0).all()  # six sigmas away: outside


def test_ssar_weights_only_trusted_samples(point_reach_data):
    learner = tiny_td3bc()
    ssar = SSAR(select="traj", trust_return=float(np.median(point_reach_data.episode_returns())))
    ssar = ssar.bind(learner)
    flags = ssar.annotate(point_reach_data, 0)["ssar/trust"]
    ep_trusted = point_reach_data.episode_returns() > ssar.trust_return
    assert np.array_equal(flags.astype(bool), ep_trusted[point_reach_data.episode_ids()])
    state = ssar.init(jax.random.PRNGKey(0), learner.spec)
    b = line_batch(jax.random.PRNGKey(1))
    trust = (jnp.arange(B) % 2).astype(jnp.float32)
    b = b.replace(extras={"ssar/trust": trust})
    _, weights = ssar.actor_hook(state, b, {}, {"bc": 1.0, "q": -2.0}, None)
    expected = ssar.beta(state["beta"].params, b.obs) / ssar.base * trust
    np.testing.assert_allclose(weights["bc"], expected, rtol=1e-6)
    assert weights["q"] == -2.0
    np.testing.assert_allclose(expected[1::2], 1.0, rtol=1e-6)  # starts at the base, everywhere


def test_ssar_online_decay_schedules():
    td3 = SSAR(select="none", hidden=(8,)).bind(tiny_td3bc())
    cql = SSAR(select="none", hidden=(8,)).bind(CQL(CQL.Config(hidden=(8,)), LearnerSpec(1, 1)))
    st = td3.init(jax.random.PRNGKey(0), LearnerSpec(1, 1))
    lin = [float(td3.online_step(st, jnp.asarray(t), 100)["scale"]) for t in (0, 80, 160)]
    cos = [float(cql.online_step(st, jnp.asarray(t), 100)["scale"]) for t in (0, 80, 160, 200)]
    assert lin == pytest.approx([1.0, 0.5, 0.0])  # T = 1.6 x 100 online updates
    assert cos == pytest.approx([1.0, np.cos(np.pi / 4), 0.0, 0.0], abs=1e-6)


def test_ssar_and_spot_refuse_learners_they_cannot_regularize():
    from shiftrl.learners import BC

    with pytest.raises(ConfigError, match="TD3\\+BC or CQL"):
        SSAR().bind(BC(BC.Config(), LearnerSpec(1, 1)))
    with pytest.raises(ConfigError, match="bc_weight"):
        SSAR().bind(tiny_td3bc(bc_weight=0.0))


# -- end to end ----------------------------------------------------------------------------
RECIPE_CASES = {
    "spot": {"spot.hidden": (32, 32), "spot.pretrain_steps": 500},
    "ssar-td3bc": {"ssar.hidden": (32, 32), "ssar.select": "iql", "ssar.iql_steps": 300},
    "ssar-cql": {"ssar.hidden": (32, 32), "ssar.update_period": 500},
}


@pytest.mark.parametrize("recipe", list(RECIPE_CASES))
def test_recipes_solve_point_reach(recipe, point_reach_data, tmp_path):
    learner = "cql" if recipe == "ssar-cql" else "td3bc"
    run = shiftrl.train(
        recipe,
        point_reach_data,
        steps=1500,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / recipe,
        overrides={
            **tiny_overrides(learner, eval_every=1500, **FAST_RUN),
            **RECIPE_CASES[recipe],
        },
        progress=False,
    )
    assert run.config.algo == learner and run.config.addons[0]["name"] == recipe.split("-")[0]
    score = run.score("final")
    assert score > 70, f"{recipe} normalized score {score:.1f}"
    if recipe == "spot":  # fine-tuning keeps the add-on and anneals lambda (official: /1e6)
        from flax import serialization

        from shiftrl.training import checkpoint
        from shiftrl.training.finetune import finetune

        res = finetune(
            run.dir,
            1000,
            prefill=False,
            eval_every=500,
            eval_episodes=5,
            steps_per_iter=500,
            progress=False,
        )
        assert res.score_after > 50
        payload = serialization.msgpack_restore(checkpoint.latest(res.out).read_bytes())
        lam = float(payload["carry"]["extra"]["addons"]["spot"]["lam"])
        # the last of 1,000 online updates is t = 999: lambda * (1 - 999 / 1e6), not 0.2 lambda
        assert lam == pytest.approx(run.config.addons[0]["lam"] * (1 - 999 / 1e6))
