"""Learning MOREC's dynamics reward by adversarial IRL (a reconstruction; see model.py).

The released MOREC code ships only trained checkpoints, so the training follows the
paper's Algorithm 1 as far as it is described (a GAIL-style alternation between a
dynamics model P_t, treated as a policy, and a discriminator D_t) and the released
class structure (the snapshot history with calibration values):

1. The generator P(s' - s | s, z, a), a Gaussian MLP on the scaled data, is first fitted
   by maximum likelihood (`pretrain_steps`), so the adversarial phase starts from the
   usual learned dynamics.
2. Each iteration draws a batch of data transitions (s, z, a, s'), and
   - the discriminator takes one logistic-regression step: data transitions labelled 1,
     (s, z, a, s + delta) with delta ~ P labelled 0;
   - the generator takes one policy-gradient step as a one-step (contextual bandit)
     policy: `gen_samples` deltas per row, reward = D's logit (log D - log(1 - D)),
     advantages = rewards minus their per-row mean over the samples, divided by their
     per-row std, plus an entropy bonus. The gradient goes through log P only, never
     through D: P is optimised as a policy (GAIL), not as a GAN generator.
3. Every `snapshot_every` iterations (one compiled `lax.scan` chunk) the discriminator is
   snapshotted with its calibration: expert = mean logit on `calibration_rows` fixed data
   rows, learner = mean logit on generator samples for the same rows. The latest
   `ensemble_size` snapshots form the reward.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from shiftrl.core.errors import DataError
from shiftrl.dynamics.reward.model import (
    DynamicsReward,
    RewardConfig,
    Scaling,
    discriminator_logit,
    gaussian_log_prob,
    generator_dist,
    init_discriminator,
    init_generator,
)


def _opt(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)


def discriminator_loss(disc, state_in, real_delta, fake_delta):
    """Logistic loss: data transitions 1, generator transitions 0."""
    real = discriminator_logit(disc, state_in, real_delta)
    fake = discriminator_logit(disc, state_in, fake_delta)
    loss = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    accuracy = 0.5 * (jnp.mean(real > 0) + jnp.mean(fake < 0))
    return loss, {"disc_loss": loss, "disc_accuracy": accuracy, "data_logit": real.mean(),
                  "model_logit": fake.mean()}  # fmt: skip


def generator_pg_loss(gen, disc, state_in, rng, config: RewardConfig):
    """One-step policy gradient on D's logit with a per-row sample-mean baseline."""
    mean, log_std = generator_dist(gen, state_in)
    noise = jax.random.normal(rng, (config.gen_samples, *mean.shape))
    deltas = jax.lax.stop_gradient(mean + jnp.exp(log_std) * noise)  # [M, B, d]
    reward = jax.lax.stop_gradient(discriminator_logit(disc, state_in[None], deltas))
    adv = (reward - reward.mean(0)) / (reward.std(0) + 1e-6)
    log_prob = gaussian_log_prob(deltas, mean[None], log_std[None])
    entropy = jnp.sum(log_std, axis=-1).mean()
    loss = -jnp.mean(adv * log_prob) - config.entropy_coef * entropy
    return loss, {"gen_reward": reward.mean(), "gen_log_std": log_std.mean()}


def mle_loss(gen, state_in, delta):
    mean, log_std = generator_dist(gen, state_in)
    return -jnp.mean(gaussian_log_prob(delta, mean, log_std))


@partial(jax.jit, static_argnames=("config", "length"), donate_argnums=(0,))
def pretrain_chunk(carry, data, rng, config: RewardConfig, length: int):
    """`length` maximum-likelihood steps of the generator, one `lax.scan`."""
    tx = _opt(config.gen_lr)
    n = data["state_in"].shape[0]

    def step(carry, key):
        gen, opt = carry
        rows = jax.random.randint(key, (config.batch_size,), 0, n)
        loss, grads = jax.value_and_grad(mle_loss)(gen, data["state_in"][rows], data["delta"][rows])
        updates, opt = tx.update(grads, opt, gen)
        return (optax.apply_updates(gen, updates), opt), loss

    carry, losses = jax.lax.scan(step, carry, jax.random.split(rng, length))
    return carry, losses.mean()


@partial(jax.jit, static_argnames=("config", "length"), donate_argnums=(0,))
def adversarial_chunk(carry, data, rng, config: RewardConfig, length: int):
    """`length` adversarial iterations (one D step, one P step each), one `lax.scan`."""
    d_tx, g_tx = _opt(config.disc_lr), _opt(config.gen_lr)
    n = data["state_in"].shape[0]

    def step(carry, key):
        disc, d_opt, gen, g_opt = carry
        k_rows, k_fake, k_pg = jax.random.split(key, 3)
        rows = jax.random.randint(k_rows, (config.batch_size,), 0, n)
        state_in, delta = data["state_in"][rows], data["delta"][rows]
        mean, log_std = generator_dist(gen, state_in)
        fake = mean + jnp.exp(log_std) * jax.random.normal(k_fake, mean.shape)
        grads, d_metrics = jax.grad(discriminator_loss, has_aux=True)(
            disc, state_in, delta, jax.lax.stop_gradient(fake)
        )
        updates, d_opt = d_tx.update(grads, d_opt, disc)
        disc = optax.apply_updates(disc, updates)
        grads, g_metrics = jax.grad(generator_pg_loss, has_aux=True)(
            gen, disc, state_in, k_pg, config
        )
        updates, g_opt = g_tx.update(grads, g_opt, gen)
        gen = optax.apply_updates(gen, updates)
        g_metrics["model_mse"] = jnp.mean((mean - delta) ** 2)
        return (disc, d_opt, gen, g_opt), {**d_metrics, **g_metrics}

    carry, metrics = jax.lax.scan(step, carry, jax.random.split(rng, length))
    return carry, jax.tree.map(jnp.mean, metrics)


@jax.jit
def calibrate(disc, gen, state_in, delta, rng):
    """A snapshot's (expert, learner) values: its mean logit on data transitions and on
    generator transitions for the same (s, z, a)."""
    mean, log_std = generator_dist(gen, state_in)
    fake = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape)
    expert = discriminator_logit(disc, state_in, delta).mean()
    return expert, discriminator_logit(disc, state_in, fake).mean()


@dataclass
class RewardTrainReport:
    iterations: int
    history: list[dict[str, float]]
    seconds: float
    iterations_per_second: float
    """Adversarial iterations per second after the first (compiling) chunk."""
    snapshots: int
    calibrated: int
    """Kept snapshots whose expert value is above their learner value (the usable ones)."""


ChunkCallback = Callable[[dict[str, float]], None]


def train_dynamics_reward(
    observations: np.ndarray,
    actions: np.ndarray,
    next_observations: np.ndarray,
    config: RewardConfig = RewardConfig(),
    seed: int = 0,
    z: np.ndarray | None = None,
    on_chunk: ChunkCallback | None = None,
) -> tuple[DynamicsReward, RewardTrainReport]:
    """Learn r_D from raw transitions (and the hidden factor z [N, z_dim] when
    config.z_dim > 0); returns the reward model and what happened."""
    obs_dim, act_dim = observations.shape[1], actions.shape[1]
    if len(observations) < 2:
        raise DataError("dynamics-reward: needs at least 2 transitions")
    if (z is None) != (config.z_dim == 0) or (
        z is not None and z.shape != (len(observations), config.z_dim)
    ):
        raise DataError(
            f"dynamics-reward: z must be given as [N, {config.z_dim}] exactly when z_dim > 0"
        )
    scaling = Scaling.fit(observations, actions, next_observations, config.obs_scale)
    zj = None if z is None else jnp.asarray(z, jnp.float32)
    state_in, delta = scaling.inputs(
        jnp.asarray(observations, jnp.float32),
        jnp.asarray(actions, jnp.float32),
        jnp.asarray(next_observations, jnp.float32),
        zj,
    )
    data = {"state_in": state_in, "delta": delta}
    rng = np.random.default_rng(seed)
    calib_rows = rng.choice(
        len(observations), min(config.calibration_rows, len(observations)), replace=False
    )
    calib_in, calib_delta = state_in[calib_rows], delta[calib_rows]

    key = jax.random.PRNGKey(seed)
    key, k_d, k_g = jax.random.split(key, 3)
    disc = init_discriminator(k_d, config, obs_dim, act_dim)
    gen = init_generator(k_g, config, obs_dim, act_dim)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    g_opt = _opt(config.gen_lr).init(gen)
    done = 0
    while done < config.pretrain_steps:
        length = min(config.snapshot_every, config.pretrain_steps - done)
        key, k = jax.random.split(key)
        (gen, g_opt), loss = pretrain_chunk((gen, g_opt), data, k, config, length)
        done += length
        row = {"phase": "pretrain", "step": done, "mle_loss": float(loss)}
        history.append(row)
        if on_chunk is not None:
            on_chunk(row)
    carry = (disc, _opt(config.disc_lr).init(disc), gen, _opt(config.gen_lr).init(gen))
    snapshots: list[tuple[Any, float, float]] = []
    done, first_chunk_end = 0, None
    adversarial_start = time.perf_counter()
    while done < config.iterations:
        length = min(config.snapshot_every, config.iterations - done)
        key, k, k_cal = jax.random.split(key, 3)
        carry, metrics = adversarial_chunk(carry, data, k, config, length)
        done += length
        expert, learner = calibrate(carry[0], carry[2], calib_in, calib_delta, k_cal)
        snapshot = jax.tree.map(jnp.copy, carry[0])
        snapshots = [*snapshots, (snapshot, float(expert), float(learner))][-config.ensemble_size :]
        row = {
            "phase": "adversarial",
            "step": done,
            **{k: float(v) for k, v in metrics.items()},
            "expert_value": float(expert),
            "learner_value": float(learner),
        }
        if not np.isfinite(row["disc_loss"]):
            raise DataError("dynamics-reward: training diverged (non-finite discriminator loss)")
        history.append(row)
        if first_chunk_end is None:
            first_chunk_end = time.perf_counter()
        if on_chunk is not None:
            on_chunk(row)
    seconds = time.perf_counter() - start
    steady = time.perf_counter() - (first_chunk_end or adversarial_start)
    first_length = min(config.snapshot_every, config.iterations)
    rate = (
        (config.iterations - first_length) / steady if steady > 0 and done > first_length else 0.0
    )
    model = DynamicsReward(
        snapshots=jax.tree.map(lambda *xs: jnp.stack(xs), *[s for s, _, _ in snapshots]),
        expert=jnp.asarray([e for _, e, _ in snapshots], jnp.float32),
        learner=jnp.asarray([lv for _, _, lv in snapshots], jnp.float32),
        scaling=scaling,
        config=config,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )
    report = RewardTrainReport(
        iterations=done,
        history=history,
        seconds=seconds,
        iterations_per_second=rate,
        snapshots=len(snapshots),
        calibrated=int(sum(e > lv for _, e, lv in snapshots)),
    )
    return model, report
