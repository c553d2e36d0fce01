"""Tiny JAX helpers shared by learners (never defined inside one learner's module)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def adam_state(params: Any, lr: Any) -> Any:
    """A flax TrainState with Adam at `lr` (a float or an optax schedule)."""
    import optax
    from flax.training.train_state import TrainState

    return TrainState.create(apply_fn=None, params=params, tx=optax.adam(lr))


def strong_types(tree: Any) -> Any:
    """`tree` with no weakly typed leaves. A Python scalar made an array (a parameter built
    from a float, an optimizer's step count) is weakly typed; the first update returns it
    strongly typed, and the changed input type makes every jitted function that takes the
    state compile again (SAC's train chunk compiled three times before this)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)), tree)


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


def soft_clipped_double_q(q: jax.Array, lmbda: float) -> jax.Array:
    """BCQ's soft clipped double Q over ensemble axis 0: lambda min_j Q_j + (1 - lambda) max_j Q_j."""
    return lmbda * q.min(0) + (1.0 - lmbda) * q.max(0)


def best_action(actions: jax.Array, scores: jax.Array) -> jax.Array:
    """Per state, the candidate with the highest score: actions [B, n, A], scores [B, n] -> [B, A]."""
    idx = jnp.argmax(scores, axis=-1)
    return jnp.take_along_axis(actions, idx[:, None, None], axis=1)[:, 0]
