"""Stochastic policies.

- `GaussianActor`: IQL's policy: mean tanh(MLP(s)), a state-independent log-std,
  an untransformed Normal (CORL/IQL reference implementation).
- `TanhGaussianActor`: SAC/CQL's reparameterised tanh-squashed Gaussian with the
  change-of-variables correction in log-prob.
- `SquashedGaussianActor`: BRAC's (and BEAR's) tanh-Gaussian: it returns the Gaussian's
  (mean, log_std) with log_std squashed into a range by tanh; learners sample u and use
  `tanh_normal_log_prob`, since BEAR needs the pre-tanh samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from shiftrl.nets.mlp import MLP

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)  # plain float: importing must not start XLA


def normal_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Sum over the last axis of log N(x; mean, exp(log_std)^2)."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - _HALF_LOG_2PI, axis=-1)


def tanh_log_det(u: jax.Array) -> jax.Array:
    """log|d tanh(u)/du| summed over the last axis, = 2 (log 2 - u - softplus(-2u)) (stable)."""
    return jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def tanh_normal_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log-density of a = tanh(u) where u ~ N(mean, exp(log_std)^2), given u."""
    return normal_log_prob(u, mean, log_std) - tanh_log_det(u)


class GaussianActor(nn.Module):
    act_dim: int
    hidden: Sequence[int] = (256, 256)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        """Returns (mean [B, A], log_std [A])."""
        mean = jnp.tanh(MLP(self.hidden, self.act_dim, dropout=self.dropout)(obs, train))
        log_std = self.param("log_std", nn.initializers.zeros, (self.act_dim,))
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    @staticmethod
    def log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
        return normal_log_prob(action, mean, jnp.broadcast_to(log_std, mean.shape))


class TanhGaussianActor(nn.Module):
    """CORL's CQL policy: MLP -> (mean, log_std); log_std = m * raw + b with learnable m, b."""

    act_dim: int
    hidden: Sequence[int] = (256, 256)
    orthogonal_init: bool = False
    log_std_multiplier: float = 1.0
    log_std_offset: float = -1.0
    log_std_min: float = LOG_STD_MIN
    """Lower clip of log sigma (CORL: -20; OfflineRL-Kit's MOPO / MOBILE actor: -5)."""

    def setup(self):
        self.net = MLP(self.hidden, 2 * self.act_dim, self.orthogonal_init, last_layer_scale=1e-2)
        self.std_mult = self.param(
            "log_std_multiplier", lambda _: jnp.array(self.log_std_multiplier, jnp.float32)
        )
        self.std_off = self.param(
            "log_std_offset", lambda _: jnp.array(self.log_std_offset, jnp.float32)
        )

    def dist(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, raw_log_std = jnp.split(self.net(obs), 2, axis=-1)
        log_std = self.std_mult * raw_log_std + self.std_off
        log_std = jnp.clip(log_std, self.log_std_min, LOG_STD_MAX)
        return mean, log_std

    def __call__(self, obs: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Reparameterised sample a = tanh(u) and its log-prob (with tanh correction)."""
        mean, log_std = self.dist(obs)
        u = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape)
        log_prob = normal_log_prob(u, mean, log_std)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), numerically stable form
        log_prob -= jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
        return jnp.tanh(u), log_prob

    def deterministic(self, obs: jax.Array) -> jax.Array:
        mean, _ = self.dist(obs)
        return jnp.tanh(mean)

    def log_prob(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        """log pi(a|s) for a given in-range action (used by CQL's BC warm-up)."""
        mean, log_std = self.dist(obs)
        a = jnp.clip(action, -1 + 1e-6, 1 - 1e-6)
        u = jnp.arctanh(a)
        lp = normal_log_prob(u, mean, log_std)
        return lp - jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


class SquashedGaussianActor(nn.Module):
    """MLP -> (mean, log_std) of u, action tanh(u). log_std = lo + (hi - lo)(tanh(raw) + 1) / 2
    stays in [lo, hi] with a gradient everywhere (BRAC's networks.py: [-5, 0])."""

    act_dim: int
    hidden: Sequence[int] = (256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, raw = jnp.split(MLP(self.hidden, 2 * self.act_dim)(obs), 2, axis=-1)
        half_range = 0.5 * (self.log_std_max - self.log_std_min)
        return mean, self.log_std_min + half_range * (jnp.tanh(raw) + 1.0)
