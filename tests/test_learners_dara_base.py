"""DARA's base learners BCQ, BEAR, BRAC-p and AWR: each learns PointReach (normalized score,
random = 0, optimal = 100), each one's losses equal a hand computation (numpy, from the
papers' formulas) on a fixed batch using the networks' raw outputs, and the conditional VAE
they share learns a behaviour density."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import shiftrl
from shiftrl.envs.toy import POINT_REACH_ID
from shiftrl.learners import AWR, BCQ, BEAR, BRACP
from shiftrl.learners.base import NO_HOOKS
from shiftrl.learners.bear import mmd
from shiftrl.nets import VAE
from tests.conftest import (
    FAST_RUN,
    np_,
    tiny_overrides,
)
from tests.conftest import FIXED_B as B
from tests.conftest import FIXED_SPEC as SPEC

H = (16,)
GAMMA = 0.99

# ---------------------------------------------------------------------------------------
# (a) each learner solves PointReach
# ---------------------------------------------------------------------------------------
# Schedules shortened for a 1000-step run; everything else keeps the paper defaults. AWR
# bootstraps V with TD(0): its target V tracks 10x faster (tau 0.05) so that values reach
# across PointReach's horizon in time (with tau 0.005 it scores ~17 after 1500 steps).
# Scores reached (seed 0): bcq 99, bear 100, bracp 104, awr 94.
LEARN = {
    "bcq": {},
    "bear": {"warmup_steps": 200},
    "bracp": {"behavior_steps": 300, "warm_start": 100},
    "awr": {"tau": 0.05},
}
THRESHOLD = 80.0


@pytest.mark.parametrize("algo", list(LEARN))
def test_learner_solves_point_reach(algo, point_reach_data, tmp_path):
    run = shiftrl.train(
        algo,
        point_reach_data,
        steps=1000,
        eval_envs=[POINT_REACH_ID],
        out=tmp_path / algo,
        overrides=tiny_overrides(algo, eval_every=1000, **FAST_RUN, **LEARN[algo]),
        progress=False,
    )
    score = run.score("final")
    assert score > THRESHOLD, f"{algo} normalized score {score:.1f}"
    # the saved policy reproduces the logged evaluation (acting is deterministic)
    res = shiftrl.load_policy(run.dir).evaluate(POINT_REACH_ID, episodes=20, seed=10_000)
    assert res.normalized == pytest.approx(score, abs=1e-3)


# ---------------------------------------------------------------------------------------
# (b) losses by hand on a fixed batch
# ---------------------------------------------------------------------------------------


def repeat(x, n):
    return jnp.broadcast_to(x[:, None], (x.shape[0], n, x.shape[-1]))


def tanh_normal_logp(u, mean, log_std):
    """log density of tanh(u), u ~ N(mean, std^2), summed over the last axis (numpy)."""
    gauss = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.sum(gauss - np.log(1.0 - np.tanh(u) ** 2), -1)


def test_bcq_soft_clipped_double_q_target_and_actor(batch):
    n = 5
    cfg = BCQ.Config(actor_hidden=H, critic_hidden=H, vae_hidden=H, n_target_samples=n)
    learner = BCQ(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(0))
    rng = jax.random.PRNGKey(1)
    loss, _ = learner.critic_loss(state.critic.params, state, batch, rng, NO_HOOKS)

    # the same clipped latent draws, decoded by G, perturbed by the target xi
    z = learner.vae.prior_draw(rng, (B, n))
    assert np.abs(np_(z)).max() <= 0.5
    next_obs = repeat(batch.next_obs, n)
    sampled = learner.vae.decode(state.vae.params, next_obs, z)
    next_a = learner.perturb(state.actor_target, next_obs, sampled)
    assert np.abs(np_(next_a) - np_(sampled)).max() <= 0.05 + 1e-6  # |xi| <= Phi
    q_next = np_(learner.q(state.critic_target, next_obs, next_a))  # [2, B, n]
    soft = 0.75 * q_next.min(0) + 0.25 * q_next.max(0)
    y = np_(batch.reward) + GAMMA * (1 - np_(batch.terminal)) * soft.max(1)
    q = np_(learner.q(state.critic.params, batch.obs, batch.action))
    assert float(loss) == pytest.approx(np.mean(np.sum((q - y) ** 2, 0)), rel=1e-5)

    # actor: -Q_1(s, a + xi(s, a)), a ~ G(s)
    loss, _ = learner.actor_loss(state.actor.params, state, batch, rng, NO_HOOKS)
    pi = learner.perturb(
        state.actor.params, batch.obs, learner.vae.sample(state.vae.params, batch.obs, rng)
    )
    assert float(loss) == pytest.approx(
        -np_(learner.q(state.critic.params, batch.obs, pi)[0]).mean(), rel=1e-5
    )

    # acting: the candidate with the highest Q_1 among 100 perturbed VAE samples
    z_act = jnp.broadcast_to(learner.vae.prior_draw(jax.random.PRNGKey(0), (100,)), (B, 100, 4))
    obs_n = repeat(batch.obs, 100)
    cands = learner.perturb(
        state.actor.params, obs_n, learner.vae.decode(state.vae.params, obs_n, z_act)
    )
    q1 = np_(learner.q(state.critic.params, obs_n, cands)[0])
    best = np_(cands)[np.arange(B), q1.argmax(1)]
    np.testing.assert_allclose(np_(learner.act(state, batch.obs)), best, rtol=1e-6)


def np_mmd(x, y, sigma, kernel):
    def mean_k(a, b):
        d = a[:, :, None, :] - b[:, None, :, :]
        dist = np.abs(d).sum(-1) if kernel == "laplacian" else (d**2).sum(-1)
        return np.exp(-dist / (2 * sigma)).mean((1, 2))

    return np.sqrt(mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y) + 1e-6)


def test_bear_mmd_matches_numpy():
    rs = np.random.default_rng(0)
    x, y = rs.normal(size=(4, 5, 2)), rs.normal(1.0, 2.0, size=(4, 5, 2))
    for kernel, sigma in [("laplacian", 20.0), ("laplacian", 0.5), ("gaussian", 20.0)]:
        got = np_(mmd(jnp.asarray(x), jnp.asarray(y), sigma, kernel))
        np.testing.assert_allclose(got, np_mmd(x, y, sigma, kernel), rtol=1e-5)
    # identical sample sets: only the 1e-6 floor is left; a shifted set is farther
    assert np_(mmd(jnp.asarray(x), jnp.asarray(x), 1.0)) == pytest.approx(
        np.full(4, 1e-3), rel=1e-3
    )
    assert np.all(np_(mmd(jnp.asarray(x), jnp.asarray(x + 3.0), 1.0)) > 0.5)


def test_bear_actor_loss_and_dual(batch):
    n = 3
    cfg = BEAR.Config(
        actor_hidden=H,
        critic_hidden=H,
        vae_hidden=H,
        n_mmd_samples=n,
        warmup_steps=10,
        mmd_sigma=1.0,
    )
    learner = BEAR(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(2))
    rng = jax.random.PRNGKey(3)

    # the same draws by hand: clipped policy noise, clipped VAE latents, pre-tanh samples
    k_pi, k_vae = jax.random.split(rng)
    noise = np.clip(np_(jax.random.normal(k_pi, (B, n, 2))), -0.5, 0.5)
    mean, log_std = learner.actor_net.apply({"params": state.actor.params}, batch.obs)
    assert np.all((np_(log_std) >= -5.0) & (np_(log_std) <= 2.0))
    u = np_(mean)[:, None] + np.exp(np_(log_std))[:, None] * noise
    obs_n = repeat(batch.obs, n)
    v = np_(learner.vae.decode_raw(state.vae.params, obs_n, learner.vae.prior_draw(k_vae, (B, n))))
    div = np_mmd(v, u, 1.0, "laplacian")
    q = np_(learner.q(state.critic.params, obs_n, jnp.tanh(jnp.asarray(u, jnp.float32))))
    q_pi = q.mean(-1).min(0)  # min over critics of the mean over samples

    # warm-up (step 0 < 10): alpha * MMD only; alpha = e^0
    loss, (_, got_div) = learner.actor_loss(state.actor.params, state, batch, rng, NO_HOOKS)
    np.testing.assert_allclose(np_(got_div), div, rtol=1e-4)
    assert float(loss) == pytest.approx(div.mean(), rel=1e-4)
    late = state.replace(step=jnp.asarray(10, jnp.int32))
    loss, _ = learner.actor_loss(late.actor.params, late, batch, rng, NO_HOOKS)
    assert float(loss) == pytest.approx(-q_pi.mean() + div.mean(), rel=1e-4)

    # dual: L = -alpha (MMD - 0.05); log alpha rises while MMD > eps, falls below, is clipped
    dual = learner.alpha_loss(state.log_alpha.params, jnp.asarray(div, jnp.float32))
    assert float(dual) == pytest.approx(-(div - 0.05).mean(), rel=1e-5)
    raised = learner.dual_step(state.log_alpha, jnp.asarray(div, jnp.float32))
    lowered = learner.dual_step(state.log_alpha, jnp.full(B, 0.01))
    assert div.mean() > 0.05 and float(raised.params["value"]) > 0.0
    assert float(lowered.params["value"]) < 0.0
    top = state.log_alpha.replace(params={"value": jnp.asarray(10.0)})
    assert float(learner.dual_step(top, jnp.asarray(div, jnp.float32)).params["value"]) == 10.0


def test_bracp_kl_estimate_and_actor_loss(batch):
    cfg = BRACP.Config(
        actor_hidden=H,
        critic_hidden=H,
        behavior_hidden=H,
        behavior_steps=5,
        warm_start=2,
        n_div_samples=4,
        alpha=0.1,
    )
    learner = BRACP(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(4))
    rng = jax.random.PRNGKey(5)

    def dist(net, params):
        mean, log_std = net.apply({"params": params}, batch.obs)
        assert np.all((np_(log_std) >= -5.0) & (np_(log_std) <= 0.0))
        return np_(mean), np_(log_std)

    mu, ls = dist(learner.actor_net, state.actor.params)
    mu_b, ls_b = dist(learner.behavior_net, state.behavior.params)
    # KL(pi || pi_b)(s) ~ mean_k [log pi(a_k|s) - log pi_b(clip(a_k, 1e-3)|s)], a_k ~ pi
    u = mu + np.exp(ls) * np_(jax.random.normal(rng, (4, B, 2)))
    a = np.clip(np.tanh(u), -1 + 1e-3, 1 - 1e-3)
    kl = np.mean(tanh_normal_logp(u, mu, ls) - tanh_normal_logp(np.arctanh(a), mu_b, ls_b), 0)
    got = np_(learner.kl_estimate(state.actor.params, state.behavior.params, batch.obs, rng))
    np.testing.assert_allclose(got, kl, rtol=1e-4, atol=1e-4)
    # pi = pi_b gives (almost) zero: only actions clipped at 1 - 1e-3 could differ
    same = np_(learner.kl_estimate(state.actor.params, state.actor.params, batch.obs, rng))
    np.testing.assert_allclose(same, 0.0, atol=1e-4)

    # actor: alpha D(s) - 1[t > warm_start] min_j Q_j(s, a~), no entropy term by default
    k_pi, k_div = jax.random.split(rng)
    u_pi = mu + np.exp(ls) * np_(jax.random.normal(k_pi, (B, 2)))
    div = np_(learner.kl_estimate(state.actor.params, state.behavior.params, batch.obs, k_div))
    q_pi = np_(
        learner.q(state.critic.params, batch.obs, jnp.tanh(jnp.asarray(u_pi, jnp.float32)))
    ).min(0)
    for step, q_on in [(6, 0.0), (8, 1.0)]:  # RL steps 1 and 3 after 5 behaviour steps
        s = state.replace(step=jnp.asarray(step, jnp.int32))
        loss, _ = learner.actor_loss(s.actor.params, s, batch, rng, NO_HOOKS)
        assert float(loss) == pytest.approx(np.mean(0.1 * div - q_on * q_pi), rel=1e-4)


def test_bracp_phases(batch):
    cfg = BRACP.Config(actor_hidden=H, critic_hidden=H, behavior_hidden=H, behavior_steps=1)
    learner = BRACP(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(6))
    update = jax.jit(learner.update)
    # step 0: behaviour cloning only, RL metrics are NaN and the actor is untouched
    s1, m1 = update(state, batch, jax.random.PRNGKey(0))
    assert np.isfinite(float(m1["behavior/nll"])) and np.isnan(float(m1["actor/loss"]))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, s1.actor.params, state.actor.params))
    # step 1: BRAC with the behaviour policy frozen
    s2, m2 = update(s1, batch, jax.random.PRNGKey(1))
    assert np.isnan(float(m2["behavior/nll"])) and np.isfinite(float(m2["actor/loss"]))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, s2.behavior.params, s1.behavior.params))


def test_awr_weights_and_losses(batch):
    cfg = AWR.Config(actor_hidden=H, critic_hidden=H, temperature=0.5, action_std=0.3)
    learner = AWR(cfg, SPEC)
    state = learner.init(jax.random.PRNGKey(7))

    # weights: exp(normalized advantage / beta), clipped at 20
    adv = jnp.array([0.1, -0.3, 2.5, 0.0, 0.2, -1.0, 0.4, 0.05])
    z = (np_(adv) - np_(adv).mean()) / (np_(adv).std() + 1e-5)
    w = np.minimum(np.exp(z / 0.5), 20.0)
    assert w.max() == 20.0  # the clip is exercised
    np.testing.assert_allclose(np_(learner.advantage_weights(adv)), w, rtol=1e-5)

    # actor: -w log N(a; mu, 0.3^2) + 10 * 0.5 sum max(|mu| - 1, 0)^2, with one mean pushed out
    params = jax.tree.map(jnp.copy, state.actor.params)
    last = sorted(params)[-1]
    params[last]["bias"] = jnp.array([1.5, -0.2])
    mean = np_(learner.mu(params, batch.obs))
    assert (np.abs(mean) > 1).any()
    logn = np.sum(
        -0.5 * ((np_(batch.action) - mean) / 0.3) ** 2 - np.log(0.3) - 0.5 * np.log(2 * np.pi), -1
    )
    bound = 0.5 * np.sum(np.maximum(np.abs(mean) - 1, 0) ** 2, -1)
    loss, _ = learner.actor_loss(params, batch, adv, NO_HOOKS)
    assert float(loss) == pytest.approx(np.mean(-w * logn + 10.0 * bound), rel=1e-5)

    # value: V = net / (1 - gamma); y = r + gamma (1 - d) V'(s'); 0.5 ((1 - gamma)(y - V))^2
    net = lambda p, o: np_(learner.value_net.apply({"params": p}, o))  # noqa: E731
    y = np_(batch.reward) + GAMMA * (1 - np_(batch.terminal)) * net(
        state.value_target, batch.next_obs
    ) / (1 - GAMMA)
    v = net(state.value.params, batch.obs) / (1 - GAMMA)
    loss, _ = learner.value_loss(state.value.params, state, batch, NO_HOOKS)
    assert float(loss) == pytest.approx(np.mean(0.5 * ((1 - GAMMA) * (y - v)) ** 2), rel=1e-5)


# ---------------------------------------------------------------------------------------
# (c) the conditional VAE
# ---------------------------------------------------------------------------------------
def test_vae_elbo_formula(batch):
    vae = VAE(act_dim=2, latent_dim=4, hidden=H)
    params = vae.init(jax.random.PRNGKey(8), 3)
    rng = jax.random.PRNGKey(9)
    got = np_(vae.elbo_loss(params, batch.obs, batch.action, rng, beta=0.5, num_samples=3))
    mean, std = (np_(x) for x in vae.encode(params, batch.obs, batch.action))
    z = mean + std * np_(jax.random.normal(rng, (3, B, 4)))
    recon = np_(
        vae.decode(params, jnp.broadcast_to(batch.obs, (3, B, 3)), jnp.asarray(z, jnp.float32))
    )
    kl = np.mean(
        0.5 * (mean**2 + std**2 - 1.0) - np.log(std), -1
    )  # KL(N(mu, std) || N(0, 1)) / dim
    expected = np.mean((recon - np_(batch.action)) ** 2, axis=(0, 2)) + 0.5 * kl
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_vae_learns_behaviour_density():
    """On a toy behaviour a = 0.8 s + noise, the negative ELBO falls with training and is
    lower for dataset actions than for actions 0.8 away from them."""
    rs = np.random.default_rng(0)
    obs = rs.uniform(-1, 1, (2048, 1)).astype(np.float32)
    act = np.clip(0.8 * obs + rs.normal(0, 0.05, obs.shape), -1, 1).astype(np.float32)
    ood = np.where(act > 0, act - 0.8, act + 0.8).astype(np.float32)
    obs_j, act_j = jnp.asarray(obs), jnp.asarray(act)
    vae = VAE(act_dim=1, latent_dim=2, hidden=(32, 32))
    tx = optax.adam(1e-3)
    params = vae.init(jax.random.PRNGKey(0), 1)

    @jax.jit
    def train(params, opt_state, rng):
        def step(carry, k):
            params, opt_state = carry
            k_idx, k_elbo = jax.random.split(k)
            idx = jax.random.randint(k_idx, (128,), 0, len(obs))
            loss_fn = lambda p: vae.elbo_loss(p, obs_j[idx], act_j[idx], k_elbo).mean()  # noqa: E731
            updates, opt_state = tx.update(jax.grad(loss_fn)(params), opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, (params, opt_state), jax.random.split(rng, 1000))[0]

    def nelbo(params, a):
        return np_(vae.elbo_loss(params, obs[:256], a[:256], jax.random.PRNGKey(1), num_samples=8))

    before = nelbo(params, act).mean()
    params, _ = train(params, tx.init(params), jax.random.PRNGKey(2))
    in_dist, out_dist = nelbo(params, act), nelbo(params, ood)
    assert in_dist.mean() < 0.5 * before
    assert in_dist.mean() < 0.5 * out_dist.mean()
    assert np.mean(in_dist < out_dist) > 0.9
