"""Tiny JAX helpers shared by learners (never defined inside one learner's module)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def polyak(target: Any, online: Any, tau: float) -> Any:
    """Soft target update: target <- (1 - tau) * target + tau * online."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def copy_params(params: Any) -> Any:
    """A target copy that shares no buffers with the online params (safe to donate)."""
    return jax.tree.map(jnp.copy, params)


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """Asymmetric squared loss |tau - 1(u < 0)| * u^2 (IQL's value loss), per sample."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff**2


def nan_like(tree: Any) -> Any:
    """A pytree of NaNs shaped like `tree` (metrics of a skipped update, averaged with nanmean)."""
    return jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype), tree)
