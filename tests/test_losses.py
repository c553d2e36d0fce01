"""Each learner's losses equal a hand computation (numpy, from the papers' formulas) on a
fixed batch, using the networks' raw outputs. Timeouts are not terminals: a row with
terminal = 0 bootstraps even if its episode was cut by a time limit."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shiftrl.learners import BC, CQL, IQL, TD3BC
from tests.conftest import FIXED_B as B
from tests.conftest import FIXED_SPEC as SPEC
from tests.conftest import np_


def test_bc_loss(batch):
    learner = BC(BC.Config(actor_hidden=(16,)), SPEC)
    state = learner.init(jax.random.PRNGKey(0))
    loss, _ = learner.actor_loss(state.actor.params, batch, learner_hooks())
    pi = np_(learner.act(state, batch.obs))
    assert float(loss) == pytest.approx(np.mean((pi - np_(batch.action)) ** 2), rel=1e-5)


def learner_hooks():
    from shiftrl.learners.base import NO_HOOKS

    return NO_HOOKS


def test_td3bc_losses(batch):
    cfg = TD3BC.Config(actor_hidden=(16,), critic_hidden=(16,), policy_noise=0.0, alpha=2.5)
    learner = TD3BC(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(1))
    rng = jax.random.PRNGKey(2)

    # actor: -alpha / mean|Q1| * mean Q1(s, pi(s)) + mean (pi(s) - a)^2
    loss, _ = learner.actor_loss(state.actor.params, state, batch, rng, learner_hooks())
    pi = learner.pi(state.actor.params, batch.obs)
    q1 = np_(learner.q(state.critic.params, batch.obs, pi)[0])
    expected = -2.5 / np.abs(q1).mean() * q1.mean() + np.mean((np_(pi) - np_(batch.action)) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)

    # critic: y = r + 0.99 (1 - d) min_i Q'_i(s', pi'(s')), L = mean sum_i (Q_i - y)^2
    loss, _ = learner.critic_loss(state.critic.params, state, batch, rng, learner_hooks())
    next_pi = learner.pi(state.actor_target, batch.next_obs)
    next_q = np_(learner.q(state.critic_target, batch.next_obs, next_pi)).min(0)
    y = np_(batch.reward) + 0.99 * (1 - np_(batch.terminal)) * next_q
    q = np_(learner.q(state.critic.params, batch.obs, batch.action))
    assert float(loss) == pytest.approx(np.mean(np.sum((q - y) ** 2, 0)), rel=1e-5)


def test_td3bc_delays_actor(batch):
    learner = TD3BC(TD3BC.Config(actor_hidden=(16,), critic_hidden=(16,)), SPEC)
    state = learner.init(jax.random.PRNGKey(1))
    s1, m1 = learner.update(state, batch, jax.random.PRNGKey(0))
    assert np.isnan(float(m1["actor/loss"]))  # step 1: critic only
    assert np.array_equal(
        np_(s1.actor.params["MLP_0"]["Dense_0"]["kernel"]),
        np_(state.actor.params["MLP_0"]["Dense_0"]["kernel"]),
    )
    s2, m2 = learner.update(s1, batch, jax.random.PRNGKey(1))
    assert np.isfinite(float(m2["actor/loss"]))  # step 2: actor and targets too


def normal_logp(x, mean, log_std):
    return np.sum(
        -0.5 * ((x - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi), -1
    )


def test_iql_losses(batch):
    cfg = IQL.Config(hidden=(16,), expectile=0.7, temperature=3.0)
    learner = IQL(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(3))
    hooks = learner_hooks()

    target_q = np_(learner.q(state.critic_target, batch.obs, batch.action)).min(0)
    v = np_(learner.v(state.value.params, batch.obs))
    u = target_q - v
    expected_v = np.mean(np.where(u > 0, 0.7, 0.3) * u**2)
    loss, _ = learner.value_loss(state.value.params, state, batch)
    assert float(loss) == pytest.approx(expected_v, rel=1e-5)

    next_v = learner.v(state.value.params, batch.next_obs)
    y = np_(batch.reward) + 0.99 * (1 - np_(batch.terminal)) * np_(next_v)
    q = np_(learner.q(state.critic.params, batch.obs, batch.action))
    loss, _ = learner.critic_loss(state.critic.params, state, batch, next_v, hooks)
    assert float(loss) == pytest.approx(np.mean((q - y) ** 2), rel=1e-5)

    mean, log_std = learner.actor_net.apply({"params": state.actor.params}, batch.obs)
    w = np.minimum(np.exp(3.0 * u), 100.0)
    expected_pi = -np.mean(w * normal_logp(np_(batch.action), np_(mean), np_(log_std)))
    loss, _ = learner.actor_loss(
        state.actor.params, batch, jnp.asarray(u), jax.random.PRNGKey(0), hooks
    )
    assert float(loss) == pytest.approx(expected_pi, rel=1e-5)


def test_cql_critic_loss(batch):
    cfg = CQL.Config(hidden=(16,), cql_alpha=10.0, cql_n_actions=4)
    learner = CQL(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(4))
    rng = jax.random.PRNGKey(5)
    loss, (metrics, gap) = learner.critic_loss(
        state.critic.params, state, batch, rng, learner_hooks()
    )

    # redo the same sampling by hand: same key splits as the learner
    k_next, k_cql = jax.random.split(rng)
    next_a, _ = learner.sample(state.actor.params, batch.next_obs, k_next)
    y = np_(batch.reward) + 0.99 * (1 - np_(batch.terminal)) * np_(
        learner.q(state.critic_target, batch.next_obs, next_a)
    ).min(0)
    q = np_(learner.q(state.critic.params, batch.obs, batch.action))
    td = np.mean(np.sum((q - y) ** 2, 0))

    n, A = 4, 2
    k_rand, k_cur, k_next2 = jax.random.split(k_cql, 3)
    obs_n, next_obs_n = np.repeat(np_(batch.obs), n, 0), np.repeat(np_(batch.next_obs), n, 0)
    rand_a = jax.random.uniform(k_rand, (B * n, A), minval=-1.0, maxval=1.0)
    cur_a, cur_lp = learner.sample(state.actor.params, jnp.asarray(obs_n, jnp.float32), k_cur)
    nxt_a, nxt_lp = learner.sample(
        state.actor.params, jnp.asarray(next_obs_n, jnp.float32), k_next2
    )

    def qn(a):
        return np_(learner.q(state.critic.params, jnp.asarray(obs_n, jnp.float32), a)).reshape(
            2, B, n
        )

    cat = np.concatenate(
        [
            qn(rand_a) - A * np.log(0.5),
            qn(nxt_a) - np_(nxt_lp).reshape(B, n),
            qn(cur_a) - np_(cur_lp).reshape(B, n),
        ],
        -1,
    )
    m = cat.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(cat - m).sum(-1, keepdims=True)))[..., 0]
    gap_hand = lse - q
    np.testing.assert_allclose(np_(gap), gap_hand, rtol=1e-4, atol=1e-5)
    assert float(loss) == pytest.approx(td + 10.0 * np.mean(gap_hand.sum(0)), rel=1e-4)


def test_cql_actor_and_lagrange(batch):
    cfg = CQL.Config(
        hidden=(16,), cql_lagrange=True, cql_target_action_gap=2.0, cql_alpha=5.0, cql_n_actions=4
    )
    learner = CQL(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(6))
    rng = jax.random.PRNGKey(7)
    loss, (metrics, log_pi) = learner.actor_loss(
        state.actor.params, state, batch, rng, learner_hooks()
    )
    pi, lp = learner.sample(state.actor.params, batch.obs, rng)
    q_pi = np_(learner.q(state.critic.params, batch.obs, pi)).min(0)
    alpha = 1.0  # log_alpha starts at 0
    assert float(loss) == pytest.approx(np.mean(alpha * np_(lp) - q_pi), rel=1e-5)

    # Lagrange: critic weight alpha' * cql_alpha on (gap - target gap); alpha' = e^1 at init
    loss, (_, gap) = learner.critic_loss(state.critic.params, state, batch, rng, learner_hooks())
    dual = learner.alpha_prime_loss(state.extra["log_alpha_prime"].params, gap)
    expected_dual = -0.5 * np.sum(np.e * 5.0 * (np_(gap).mean(1) - 2.0))
    assert float(dual) == pytest.approx(expected_dual, rel=1e-5)
    # one update moves alpha' up when the gap exceeds its target, down otherwise
    new, _ = learner.update(state, batch, rng)
    direction = np.sign(np_(gap).mean() - 2.0)
    moved = float(new.extra["log_alpha_prime"].params["value"]) - 1.0
    assert np.sign(moved) == direction


def test_cql_bc_warm_up_replaces_the_q_term(batch):
    """For its first `bc_steps` the actor maximises log pi(a_data|s) in place of Q."""
    from shiftrl.nets import TanhGaussianActor

    learner = CQL(CQL.Config(hidden=(16,), bc_steps=10), SPEC)
    state = learner.init(jax.random.PRNGKey(6))
    rng = jax.random.PRNGKey(7)
    pi, lp = learner.sample(state.actor.params, batch.obs, rng)
    log_p_data = learner.actor_net.apply(
        {"params": state.actor.params}, batch.obs, batch.action, method=TanhGaussianActor.log_prob
    )
    q_pi = np_(learner.q(state.critic.params, batch.obs, pi)).min(0)
    for step, q_term in ((0, np_(log_p_data)), (9, np_(log_p_data)), (10, q_pi)):
        at = state.replace(step=jnp.asarray(step, state.step.dtype))
        loss, _ = learner.actor_loss(state.actor.params, at, batch, rng, learner_hooks())
        assert float(loss) == pytest.approx(np.mean(np_(lp) - q_term), rel=1e-5), step


def test_tanh_gaussian_log_prob_matches_sampling():
    """log pi(a|s) of a sampled action equals the log-prob returned with the sample."""
    learner = CQL(CQL.Config(hidden=(16,)), SPEC)
    state = learner.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    a, lp = learner.sample(state.actor.params, obs, jax.random.PRNGKey(2))
    from shiftrl.nets import TanhGaussianActor

    lp2 = learner.actor_net.apply(
        {"params": state.actor.params}, obs, a, method=TanhGaussianActor.log_prob
    )
    np.testing.assert_allclose(np_(lp), np_(lp2), rtol=1e-3, atol=1e-3)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TD3BC.Config().alpha = 1.0  # type: ignore[misc]


def test_sac_actor_on_target_critics_reads_the_target_q(batch):
    """MOREC's MOBILE fork: the actor maximises min_i Q'_i (target critics), not the online
    critics' min Q; with the flag the loss equals the plain loss on a state whose online
    critics are the targets."""
    from shiftrl.learners import SAC
    from shiftrl.learners.base import NO_HOOKS

    config = SAC.Config(hidden=(8,))
    plain = SAC(config, SPEC)
    on_target = SAC(dataclasses.replace(config, actor_on_target_critics=True), SPEC)
    state = plain.init(jax.random.PRNGKey(0))
    target = jax.tree.map(lambda p: 3.0 * p + 0.1, state.critic.params)
    state = state.replace(critic_target=target)
    swapped = state.replace(critic=state.critic.replace(params=target))
    rng = jax.random.PRNGKey(1)
    loss_target, _ = on_target.actor_loss(state.actor.params, state, batch, rng, NO_HOOKS)
    loss_swapped, _ = plain.actor_loss(state.actor.params, swapped, batch, rng, NO_HOOKS)
    loss_online, _ = plain.actor_loss(state.actor.params, state, batch, rng, NO_HOOKS)
    np.testing.assert_allclose(np_(loss_target), np_(loss_swapped), rtol=1e-6)
    assert abs(float(loss_target) - float(loss_online)) > 1e-3
