"""The machine's ceiling for the model-based phases: minimal fused JAX loops of MOPO's work.

What `bench throughput --algo mopo|mobile` compares shiftrl's phases with, measured in the
same run on the same sizes (hopper: 11-dim states, 3-dim actions):

- `fused_model_epoch`: a Gaussian ensemble (members x 4 x 200 Swish, mean and log-variance
  heads, NLL + soft log-variance bounds + weight decay) trained with Adam, one epoch of
  bootstrap batches in one `lax.scan`;
- `fused_rollout`: a tanh-Gaussian policy (2 x 256) acting, the ensemble predicting, one
  sampled member per row, a penalty max_k ||sigma_k||, `horizon` steps in one `lax.scan`;
- `fused_sac`: SAC updates (twin 2 x 256 critics, tanh-Gaussian actor, learned temperature)
  on batches of 5% real and 95% model rows drawn from two device buffers; with `mobile`,
  MOBILE's penalty on the model rows (std over elites of the mean over N sampled next
  states of min Q'(s', a')).

Plain flax and optax only, nothing from shiftrl, so the gap between these and shiftrl's
phases is the library's overhead. Each is timed after a warm-up call that compiles it.
"""

from __future__ import annotations

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from shiftrl.bench.fused import MLP, Twin, _polyak, _tanh_gaussian

DISCOUNT = 0.99


class Member(nn.Module):
    """One Gaussian member: Swish MLP -> [mean, raw log-variance] of [delta s, r]."""

    out: int
    hidden: tuple[int, ...] = (200, 200, 200, 200)

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.swish(nn.Dense(h)(x))
        return nn.Dense(2 * self.out)(x)


class GaussianEnsemble(nn.Module):
    """`members` Gaussian MLPs on a leading axis, log-variance softly bounded."""

    members: int
    out: int

    @nn.compact
    def __call__(self, x):  # x [E, B, in]
        heads = nn.vmap(
            Member,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=0,
            axis_size=self.members,
        )(self.out)
        mean, raw = jnp.split(heads(x), 2, axis=-1)
        max_lv = self.param("max_logvar", lambda k: jnp.full(self.out, 0.5))
        min_lv = self.param("min_logvar", lambda k: jnp.full(self.out, -10.0))
        logvar = max_lv - jax.nn.softplus(max_lv - raw)
        return mean, min_lv + jax.nn.softplus(logvar - min_lv)


def _timed(run, state, *args, repeats: int = 3) -> tuple[float, object]:
    """Best of `repeats` timed calls of `run(state, *args) -> state`, after a warm-up call
    that compiles it (best-of: other processes on a shared machine only slow calls down)."""
    state = jax.block_until_ready(run(state, *args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = jax.block_until_ready(run(state, *args))
        best = min(best, time.perf_counter() - t0)
    return best, state


def _ensemble(members: int, obs_dim: int, act_dim: int, key):
    net = GaussianEnsemble(members, obs_dim + 1)
    params = net.init(key, jnp.zeros((members, 1, obs_dim + act_dim)))
    return net, params


def fused_model_epoch(
    n: int, obs_dim: int, act_dim: int, members: int = 7, batch: int = 256, seed: int = 0
) -> dict:
    """Training transitions per second (every transition through all members)."""
    key = jax.random.PRNGKey(seed)
    k_x, k_y, k_init, k_boot = jax.random.split(key, 4)
    x = jax.random.normal(k_x, (n, obs_dim + act_dim))
    y = jax.random.normal(k_y, (n, obs_dim + 1))
    net, params = _ensemble(members, obs_dim, act_dim, k_init)
    tx = optax.adam(1e-3)
    boot = jax.random.randint(k_boot, (members, n), 0, n)

    def loss(p, xb, yb):
        mean, logvar = net.apply(p, xb)
        nll = ((mean - yb) ** 2 * jnp.exp(-logvar)).mean((1, 2)) + logvar.mean((1, 2))
        weights = [v for k, v in jax.tree_util.tree_leaves_with_path(p) if "kernel" in str(k)]
        decay = sum(5e-5 * 0.5 * (w**2).sum() for w in weights)
        bounds = 0.01 * (p["params"]["max_logvar"].sum() - p["params"]["min_logvar"].sum())
        return nll.sum() + decay + bounds

    def epoch(state, x, y, boot):
        p, opt, key = state
        key, k = jax.random.split(key)
        rows = jax.vmap(jax.random.permutation)(jax.random.split(k, members), boot)
        steps = n // batch
        idx = jnp.swapaxes(rows[:, : steps * batch].reshape(members, steps, batch), 0, 1)

        def step(c, i):
            p, opt = c
            grads = jax.grad(loss)(p, x[i], y[i])
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), None

        (p, opt), _ = jax.lax.scan(step, (p, opt), idx)
        return p, opt, key

    run = jax.jit(epoch, donate_argnums=0)
    seconds, _ = _timed(run, (params, tx.init(params), key), x, y, boot)
    samples = (n // batch) * batch
    return {"samples_per_s": samples / seconds, "samples": samples, "seconds": seconds}


def fused_rollout(
    starts: int, horizon: int, obs_dim: int, act_dim: int, members: int = 7, seed: int = 0
) -> dict:
    """Model transitions per second of `starts` rollouts of `horizon` steps."""
    key = jax.random.PRNGKey(seed)
    k_s, k_e, k_a = jax.random.split(key, 3)
    net, model = _ensemble(members, obs_dim, act_dim, k_e)
    actor = MLP(2 * act_dim)
    pi = actor.init(k_a, jnp.zeros((1, obs_dim)))
    obs0 = jax.random.normal(k_s, (starts, obs_dim))

    def rollout(key, obs0):
        def step(obs, key):
            k_pi, k_noise, k_pick = jax.random.split(key, 3)
            action, _ = _tanh_gaussian(actor.apply(pi, obs), k_pi)
            x = jnp.concatenate([obs, action], -1)
            x = jnp.broadcast_to(x, (members, *x.shape))
            mean, logvar = net.apply(model, x)
            std = jnp.exp(0.5 * logvar)
            sample = mean + std * jax.random.normal(k_noise, mean.shape)
            pick = jax.random.randint(k_pick, (starts,), 0, members)
            chosen = sample[pick, jnp.arange(starts)]
            penalty = jnp.linalg.norm(std, axis=-1).max(0)
            next_obs = obs + chosen[:, :-1]
            return next_obs, (next_obs, chosen[:, -1] - penalty)

        return jax.lax.scan(step, obs0, jax.random.split(key, horizon))

    seconds = _time_calls(jax.jit(lambda key, obs0: rollout(key, obs0)[1]), key, obs0)
    return {"transitions_per_s": starts * horizon / seconds, "seconds": seconds}


def _time_calls(fn, *args, repeats: int = 3) -> float:
    """Best of `repeats` timed calls of `fn(*args)` after a compiling one."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def fused_sac(
    steps: int,
    obs_dim: int,
    act_dim: int,
    real_ratio: float = 0.05,
    mobile: bool = False,
    samples: int = 10,
    members: int = 7,
    elites: int = 5,
    batch: int = 256,
    n: int = 100_000,
    seed: int = 0,
) -> dict:
    """SAC updates per second on real + model batches (MOPO's policy phase); with `mobile`,
    MOBILE's Bellman-inconsistency penalty on the model rows."""
    key = jax.random.PRNGKey(seed)
    ks = jax.random.split(key, 8)

    def buffer(k):
        k1, k2, k3, k4 = jax.random.split(k, 4)
        return {
            "obs": jax.random.normal(k1, (n, obs_dim)),
            "act": jax.random.uniform(k2, (n, act_dim), minval=-1.0, maxval=1.0),
            "rew": jax.random.normal(k3, (n,)),
            "next_obs": jax.random.normal(k4, (n, obs_dim)),
            "done": jnp.zeros((n,)),
        }

    real, fake = buffer(ks[0]), buffer(ks[1])
    n_real = max(1, round(real_ratio * batch))
    actor, critic = MLP(2 * act_dim), Twin(1)
    obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
    p = {
        "actor": actor.init(ks[2], obs)["params"],
        "critic": critic.init(ks[3], obs, act)["params"],
        "log_alpha": jnp.zeros(()),
    }
    net, model = _ensemble(members, obs_dim, act_dim, ks[4])
    tx = optax.adam(3e-4)
    carry = {
        "p": p,
        "opt": {k: tx.init(v) for k, v in p.items()},
        "target": jax.tree.map(jnp.copy, p["critic"]),
    }
    sample = lambda ap, o, k: _tanh_gaussian(actor.apply({"params": ap}, o), k)  # noqa: E731
    q = lambda cp, o, a: critic.apply({"params": cp}, o, a)[..., 0]  # noqa: E731

    def mobile_penalty(c, b, key):
        """std over elites of mean_n min Q'(s'_kn, a'_kn), s'_kn from elite k's Gaussian."""
        k_noise, k_act = jax.random.split(key)
        x = jnp.concatenate([b["obs"], b["act"]], -1)
        mean, logvar = net.apply(model, jnp.broadcast_to(x, (members, *x.shape)))
        mean, std = mean[:elites], jnp.exp(0.5 * logvar[:elites])
        noise = jax.random.normal(k_noise, (samples, *mean.shape))
        next_obs = b["obs"] + (mean + std * noise)[..., :-1]  # [N, K, B, d]
        flat = next_obs.reshape(-1, obs_dim)
        a, _ = sample(c["p"]["actor"], flat, k_act)
        tq = q(c["target"], flat, a).min(0).reshape(samples, elites, -1)
        return jnp.std(tq.mean(0), axis=0, ddof=1)

    def update(c, name, loss_fn):
        grads = jax.grad(loss_fn)(c["p"][name])
        updates, c["opt"][name] = tx.update(grads, c["opt"][name], c["p"][name])
        c["p"][name] = optax.apply_updates(c["p"][name], updates)

    def step(c, b, key):
        k1, k2, k3 = jax.random.split(key, 3)
        rew = b["rew"]
        if mobile:
            penalty = mobile_penalty(c, b, k3)
            rew = rew - jnp.where(jnp.arange(batch) >= n_real, penalty, 0.0)
        alpha = jnp.exp(c["p"]["log_alpha"])
        logp = sample(c["p"]["actor"], b["obs"], k1)[1]
        update(c, "log_alpha", lambda la: -(la * jax.lax.stop_gradient(logp - act_dim)).mean())

        def a_loss(ap):
            a, lp = sample(ap, b["obs"], k1)
            return (alpha * lp - q(c["p"]["critic"], b["obs"], a).min(0)).mean()

        update(c, "actor", a_loss)
        next_a, next_lp = sample(c["p"]["actor"], b["next_obs"], k2)
        soft = q(c["target"], b["next_obs"], next_a).min(0) - alpha * next_lp
        y = rew + DISCOUNT * (1.0 - b["done"]) * soft
        update(c, "critic", lambda cp: ((q(cp, b["obs"], b["act"]) - y) ** 2).mean(-1).sum())
        c["target"] = _polyak(c["target"], c["p"]["critic"])
        return c

    def chunk(state, real, fake):
        def body(state, _):
            c, key = state
            key, k_r, k_f, k_step = jax.random.split(key, 4)
            i_r = jax.random.randint(k_r, (n_real,), 0, n)
            i_f = jax.random.randint(k_f, (batch - n_real,), 0, n)
            b = jax.tree.map(lambda x, y: jnp.concatenate([x[i_r], y[i_f]]), real, fake)
            return (step(dict(c), b, k_step), key), None

        return jax.lax.scan(body, state, None, length=steps)[0]

    run = jax.jit(chunk, donate_argnums=0)
    seconds, _ = _timed(run, (carry, ks[5]), real, fake)
    return {"updates_per_s": steps / seconds, "steps": steps, "seconds": seconds}
