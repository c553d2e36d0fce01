"""The conditional VAE behaviour model of BCQ (Fujimoto et al., 2019), reused by BEAR and SPOT.

    encoder:  q(z|s, a) = N(mu(s, a), sigma(s, a)^2),  log sigma clipped to [-4, 15]
    decoder:  D(s, z) = tanh(MLP(s, z)) in [-1, 1]^act_dim
    sampling: a = D(s, clip(z, -0.5, 0.5)),  z ~ N(0, 1)      (BCQ's clipped prior draw)
    loss:     -ELBO(s, a) = mean_j (D(s, z)_j - a_j)^2 + beta * mean_k KL_k(q(z|s, a) || N(0, 1))

The loss is per sample and averaged over action and latent dimensions, exactly as the
reference code's `F.mse_loss(recon, a) + 0.5 * KL.mean()` once averaged over the batch
(SPOT's `elbo_loss`). `VAE` is a static description with pure functions over params, so
a learner or an add-on holds one and calls e.g. `vae.elbo_loss(params, obs, a, rng, beta)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from shiftrl.nets.mlp import MLP

LOG_STD_MIN, LOG_STD_MAX = -4.0, 15.0
LATENT_CLIP = 0.5


class VAENet(nn.Module):
    """Encoder and decoder MLPs of the conditional VAE (one Flax module, two methods)."""

    act_dim: int
    latent_dim: int
    hidden: Sequence[int] = (750, 750)

    def setup(self):
        self.encoder = MLP(self.hidden, 2 * self.latent_dim)
        self.decoder = MLP(self.hidden, self.act_dim)

    def __call__(self, obs: jax.Array, action: jax.Array, z: jax.Array):
        """Used only to create all parameters at init."""
        return self.encode(obs, action), self.decode_raw(obs, z)

    def encode(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, log_std = jnp.split(self.encoder(jnp.concatenate([obs, action], -1)), 2, axis=-1)
        return mean, jnp.exp(jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))

    def decode_raw(self, obs: jax.Array, z: jax.Array) -> jax.Array:
        """The decoder's pre-tanh output (BEAR matches supports on these)."""
        return self.decoder(jnp.concatenate([obs, z], -1))


@dataclass(frozen=True)
class VAE:
    """Conditional VAE G(s): static sizes plus pure functions of its params."""

    act_dim: int
    latent_dim: int
    """BCQ uses 2 * act_dim."""
    hidden: tuple[int, ...] = (750, 750)
    """Hidden sizes of the encoder and of the decoder (BCQ: 750-750)."""

    @property
    def net(self) -> VAENet:
        return VAENet(self.act_dim, self.latent_dim, self.hidden)

    def init(self, rng: jax.Array, obs_dim: int) -> dict:
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, self.act_dim))
        return self.net.init(rng, obs, act, jnp.zeros((1, self.latent_dim)))["params"]

    def encode(self, params, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, std) of q(z|s, a), each [B, latent_dim]."""
        return self.net.apply({"params": params}, obs, action, method=VAENet.encode)

    def decode_raw(self, params, obs: jax.Array, z: jax.Array) -> jax.Array:
        return self.net.apply({"params": params}, obs, z, method=VAENet.decode_raw)

    def decode(self, params, obs: jax.Array, z: jax.Array) -> jax.Array:
        return jnp.tanh(self.decode_raw(params, obs, z))

    def prior_draw(self, rng: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """z ~ N(0, 1) clipped to [-0.5, 0.5], shape [..., latent_dim]."""
        z = jax.random.normal(rng, (*shape, self.latent_dim))
        return jnp.clip(z, -LATENT_CLIP, LATENT_CLIP)

    def sample(self, params, obs: jax.Array, rng: jax.Array) -> jax.Array:
        """One action per state from the clipped prior: a = D(s, z)."""
        return self.decode(params, obs, self.prior_draw(rng, obs.shape[:-1]))

    def _posterior_draws(self, params, obs, action, rng, num_samples: int):
        """q(z|s, a)'s (mean, std), `num_samples` reparameterised draws z [S, B, latent] and
        their reconstructions D(s, z) [S, B, act_dim]."""
        mean, std = self.encode(params, obs, action)
        z = mean + std * jax.random.normal(rng, (num_samples, *mean.shape))
        recon = self.decode(params, jnp.broadcast_to(obs, (num_samples, *obs.shape)), z)
        return mean, std, z, recon

    def elbo_loss(
        self,
        params,
        obs: jax.Array,
        action: jax.Array,
        rng: jax.Array,
        beta: float = 0.5,
        num_samples: int = 1,
    ) -> jax.Array:
        """Per-sample negative ELBO [B] (up to scale and shift): reconstruction MSE averaged
        over `num_samples` posterior draws and action dims, plus beta * mean KL."""
        mean, std, _, recon = self._posterior_draws(params, obs, action, rng, num_samples)
        recon_loss = jnp.mean((recon - action) ** 2, axis=(0, -1))
        kl = -0.5 * jnp.mean(1.0 + 2.0 * jnp.log(std) - mean**2 - std**2, axis=-1)
        return recon_loss + beta * kl

    def iwae_log_prob(
        self,
        params,
        obs: jax.Array,
        action: jax.Array,
        rng: jax.Array,
        beta: float = 0.5,
        num_samples: int = 10,
    ) -> jax.Array:
        """Importance-weighted estimate of log pi_beta(a|s) [B] with L = `num_samples`:
        logsumexp_l [log p(a|z_l, s) + log p(z_l) - log q(z_l|s, a)] - log L, where the
        decoder is a Gaussian with std sqrt(beta / 4) (SPOT's `iwae_loss`)."""
        mean, std, z, recon = self._posterior_draws(params, obs, action, rng, num_samples)
        dec_std = jnp.sqrt(beta / 4.0)
        log_p_a = _gauss_log_prob(action, recon, dec_std)
        log_p_z = _gauss_log_prob(z, 0.0, 1.0)
        log_q_z = _gauss_log_prob(z, mean, std)
        weights = log_p_a + log_p_z - log_q_z  # [L, B]
        return jax.nn.logsumexp(weights, axis=0) - jnp.log(num_samples)


def _gauss_log_prob(x: jax.Array, mean, std) -> jax.Array:
    """Sum over the last axis of log N(x; mean, std^2)."""
    std = jnp.broadcast_to(jnp.asarray(std, x.dtype), x.shape)
    z = (x - mean) / std
    return jnp.sum(-0.5 * z**2 - jnp.log(std) - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)
