"""The machine's ceiling: minimal offline-RL update loops, fused in one jit'd `lax.scan`.

Plain flax MLPs (2 x 256 ReLU), one optax adam per network, a synthetic dataset held on the
device and batches drawn on the device with `jax.random.randint`; `steps` updates run in one
compiled call with the carry donated. Nothing from shiftrl is used, so the gap between this and
a shiftrl learner is the library's overhead. Timed after a warmup call of the same length.
"""

from __future__ import annotations

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

DISCOUNT, TAU = 0.99, 0.005


class MLP(nn.Module):
    out: int
    hidden: int = 256

    @nn.compact
    def __call__(self, *xs):
        x = jnp.concatenate(xs, axis=-1)
        for _ in range(2):
            x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.out)(x)


# Twin critics: two independent MLPs, parameters stacked on a leading axis of size 2.
Twin = nn.vmap(
    MLP, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None, axis_size=2
)


def _polyak(target, online):
    return jax.tree.map(lambda t, o: (1.0 - TAU) * t + TAU * o, target, online)


def _tanh_gaussian(out, key):
    """Sample of a tanh-squashed Gaussian from the actor's [mean, log_std] output, with log-prob."""
    mean, log_std = jnp.split(out, 2, axis=-1)
    log_std = jnp.clip(log_std, -5.0, 2.0)
    eps = jax.random.normal(key, mean.shape)
    pre = mean + jnp.exp(log_std) * eps
    logp = (-0.5 * eps**2 - log_std - 0.5 * jnp.log(2 * jnp.pi)).sum(-1)
    a = jnp.tanh(pre)
    return a, logp - jnp.log(1.0 - a**2 + 1e-6).sum(-1)


def _make(algo: str, obs_dim: int, act_dim: int, hidden: int, key):
    """(initial carry, step(carry, batch, key) -> carry) for one algorithm. The steps write
    into the carry dicts they are given: these are fresh per trace, so this is safe."""
    tx = optax.adam(3e-4)
    obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
    k_a, k_c, k_v = jax.random.split(key, 3)
    actor = MLP(act_dim if algo in ("td3bc", "bc") else 2 * act_dim, hidden)
    critic, value = Twin(1, hidden), MLP(1, hidden)
    p = {"actor": actor.init(k_a, obs)["params"]}
    if algo != "bc":
        p["critic"] = critic.init(k_c, obs, act)["params"]
    if algo == "iql":
        p["value"] = value.init(k_v, obs)["params"]
    if algo == "cql":
        p["log_alpha"] = jnp.zeros(())
    targets = {"td3bc": ("actor", "critic"), "bc": ()}.get(algo, ("critic",))
    carry = {
        "p": p,
        "opt": {k: tx.init(v) for k, v in p.items()},
        "target": {k: jax.tree.map(jnp.copy, p[k]) for k in targets},
        "step": jnp.zeros((), jnp.int32),
    }
    pi = lambda params, o: jnp.tanh(actor.apply({"params": params}, o))  # noqa: E731
    q = lambda params, o, a: critic.apply({"params": params}, o, a)[..., 0]  # noqa: E731 (2, B)

    def update(c, name, loss_fn):  # one adam step on network `name`
        grads = jax.grad(loss_fn)(c["p"][name])
        updates, c["opt"][name] = tx.update(grads, c["opt"][name], c["p"][name])
        c["p"][name] = optax.apply_updates(c["p"][name], updates)

    def td3bc(c, b, key):
        noise = jnp.clip(0.2 * jax.random.normal(key, b["act"].shape), -0.5, 0.5)
        next_a = jnp.clip(pi(c["target"]["actor"], b["next_obs"]) + noise, -1.0, 1.0)
        tq = q(c["target"]["critic"], b["next_obs"], next_a).min(0)
        y = b["rew"] + DISCOUNT * (1.0 - b["done"]) * tq
        update(c, "critic", lambda cp: ((q(cp, b["obs"], b["act"]) - y) ** 2).mean(0).sum())

        def actor_step(c):
            def loss(ap):
                a = pi(ap, b["obs"])
                q1 = q(c["p"]["critic"], b["obs"], a)[0]
                lam = jax.lax.stop_gradient(2.5 / jnp.abs(q1).mean())
                return -lam * q1.mean() + ((a - b["act"]) ** 2).mean()

            update(c, "actor", loss)
            c["target"] = {k: _polyak(c["target"][k], c["p"][k]) for k in c["target"]}
            return c

        return jax.lax.cond(c["step"] % 2 == 0, actor_step, lambda c: c, c)

    def bc(c, b, key):
        update(c, "actor", lambda ap: ((pi(ap, b["obs"]) - b["act"]) ** 2).mean())
        return c

    def iql(c, b, key):
        tq = q(c["target"]["critic"], b["obs"], b["act"]).min(0)
        v_fn = lambda vp, o: value.apply({"params": vp}, o)[..., 0]  # noqa: E731

        def v_loss(vp):
            u = tq - v_fn(vp, b["obs"])
            return (jnp.where(u > 0, 0.7, 0.3) * u**2).mean()

        update(c, "value", v_loss)
        y = b["rew"] + DISCOUNT * (1.0 - b["done"]) * v_fn(c["p"]["value"], b["next_obs"])
        update(c, "critic", lambda cp: ((q(cp, b["obs"], b["act"]) - y) ** 2).mean(0).sum())
        w = jnp.minimum(jnp.exp(3.0 * (tq - v_fn(c["p"]["value"], b["obs"]))), 100.0)

        def a_loss(ap):  # advantage-weighted regression, Gaussian with tanh mean
            mean, log_std = jnp.split(actor.apply({"params": ap}, b["obs"]), 2, axis=-1)
            z = (b["act"] - jnp.tanh(mean)) / jnp.exp(log_std)
            return -(w * (-0.5 * z**2 - log_std).sum(-1)).mean()

        update(c, "actor", a_loss)
        c["target"]["critic"] = _polyak(c["target"]["critic"], c["p"]["critic"])
        return c

    def cql(c, b, key, n=10, weight=10.0):
        k1, k2, k3, k4, k5 = jax.random.split(key, 5)
        sample = lambda ap, o, k: _tanh_gaussian(actor.apply({"params": ap}, o), k)  # noqa: E731
        alpha = jnp.exp(c["p"]["log_alpha"])
        logp = sample(c["p"]["actor"], b["obs"], k1)[1]
        update(c, "log_alpha", lambda la: -(la * jax.lax.stop_gradient(logp - act_dim)).mean())

        def a_loss(ap):
            a, lp = sample(ap, b["obs"], k1)
            return (alpha * lp - q(c["p"]["critic"], b["obs"], a).min(0)).mean()

        update(c, "actor", a_loss)
        next_a, _ = sample(c["p"]["actor"], b["next_obs"], k2)
        y = b["rew"] + DISCOUNT * (1.0 - b["done"]) * q(
            c["target"]["critic"], b["next_obs"], next_a
        ).min(0)
        obs_n = jnp.repeat(b["obs"], n, axis=0)
        a_rand = jax.random.uniform(k3, (obs_n.shape[0], act_dim), minval=-1.0, maxval=1.0)
        a_cur, lp_cur = sample(c["p"]["actor"], obs_n, k4)
        a_nxt, lp_nxt = sample(c["p"]["actor"], jnp.repeat(b["next_obs"], n, axis=0), k5)

        def c_loss(cp):
            q_data = q(cp, b["obs"], b["act"])
            qs = lambda a, lp: (q(cp, obs_n, a) - lp).reshape(2, -1, n)  # noqa: E731
            cat = jnp.concatenate(
                [qs(a_rand, act_dim * jnp.log(0.5)), qs(a_cur, lp_cur), qs(a_nxt, lp_nxt)], -1
            )
            gap = jax.nn.logsumexp(cat, axis=-1) - q_data
            return (((q_data - y) ** 2).mean(-1) + weight * gap.mean(-1)).sum()

        update(c, "critic", c_loss)
        c["target"]["critic"] = _polyak(c["target"]["critic"], c["p"]["critic"])
        return c

    return carry, {"td3bc": td3bc, "bc": bc, "iql": iql, "cql": cql}[algo]


def measure_fused(
    algo: str = "td3bc",
    steps: int = 2000,
    warmup_chunks: int = 1,
    batch_size: int = 256,
    obs_dim: int = 17,
    act_dim: int = 6,
    hidden: int = 256,
    seed: int = 0,
    n_transitions: int = 100_000,
) -> dict:
    """Gradient updates/second of the minimal fused loop for td3bc, bc, iql or cql."""
    if algo not in ("td3bc", "bc", "iql", "cql"):
        raise ValueError(f"unknown algo {algo!r}: td3bc, bc, iql or cql")
    key_data, key_init, key_run = jax.random.split(jax.random.PRNGKey(seed), 3)
    ks = jax.random.split(key_data, 4)
    data = {
        "obs": jax.random.normal(ks[0], (n_transitions, obs_dim)),
        "act": jax.random.uniform(ks[1], (n_transitions, act_dim), minval=-1.0, maxval=1.0),
        "rew": jax.random.normal(ks[2], (n_transitions,)),
        "next_obs": jax.random.normal(ks[3], (n_transitions, obs_dim)),
        "done": jnp.zeros((n_transitions,)),
    }
    carry, step = _make(algo, obs_dim, act_dim, hidden, key_init)

    def chunk(state, data):  # data is an argument, not a closure: no baked-in constants
        def body(state, _):
            c, key = state
            key, k_idx, k_step = jax.random.split(key, 3)
            idx = jax.random.randint(k_idx, (batch_size,), 0, n_transitions)
            c = step(dict(c), jax.tree.map(lambda x: x[idx], data), k_step)
            return ({**c, "step": c["step"] + 1}, key), None

        return jax.lax.scan(body, state, None, length=steps)[0]

    run = jax.jit(chunk, donate_argnums=0)
    state = (carry, key_run)
    for _ in range(max(1, warmup_chunks)):  # compile + warm caches, excluded
        state = jax.block_until_ready(run(state, data))
    t0 = time.perf_counter()
    state = jax.block_until_ready(run(state, data))
    seconds = time.perf_counter() - t0
    return {"algo": algo, "updates_per_s": steps / seconds, "steps": steps, "seconds": seconds}
