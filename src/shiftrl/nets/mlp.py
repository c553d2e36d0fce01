"""MLPs, the deterministic actors, value nets and vmapped critic ensembles.

Actions live in [-1, 1] inside every learner (the trainer rescales the dataset's
action bounds), so actors end in tanh and need no `max_action`.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.nets.init import orthogonal


def hidden_init(use_orthogonal: bool):
    # CORL's CQL uses orthogonal(sqrt 2) hidden layers; everything else keeps PyTorch-like defaults.
    return orthogonal(np.sqrt(2.0)) if use_orthogonal else nn.initializers.lecun_normal()


class MLP(nn.Module):
    hidden: Sequence[int]
    out_dim: int
    orthogonal_init: bool = False
    last_layer_scale: float | None = None
    """If set, the output layer is initialised small (orthogonal/uniform with this gain)."""
    dropout: float = 0.0
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for h in self.hidden:
            x = nn.Dense(h, kernel_init=hidden_init(self.orthogonal_init))(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        if self.last_layer_scale is not None:
            init = (
                orthogonal(self.last_layer_scale)
                if self.orthogonal_init
                else nn.initializers.variance_scaling(
                    self.last_layer_scale**2, "fan_avg", "uniform"
                )
            )
            return nn.Dense(self.out_dim, kernel_init=init, bias_init=nn.initializers.zeros)(x)
        return nn.Dense(self.out_dim)(x)


class DeterministicActor(nn.Module):
    """pi(s) = tanh(MLP(s)) in [-1, 1]^act_dim (TD3+BC, BC)."""

    act_dim: int
    hidden: Sequence[int] = (256, 256)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array, train: bool = False) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.act_dim, dropout=self.dropout)(obs, train))


class PerturbationActor(nn.Module):
    """BCQ's perturbation model: clip(a + phi * tanh(MLP(s, a)), -1, 1), so |xi| <= phi."""

    act_dim: int
    hidden: Sequence[int] = (400, 300)
    phi: float = 0.05

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        xi = self.phi * jnp.tanh(MLP(self.hidden, self.act_dim)(x))
        return jnp.clip(action + xi, -1.0, 1.0)


class QNet(nn.Module):
    hidden: Sequence[int] = (256, 256)
    orthogonal_init: bool = False
    last_layer_scale: float | None = None
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        net = MLP(
            self.hidden, 1, self.orthogonal_init, self.last_layer_scale, layer_norm=self.layer_norm
        )
        return net(x)[..., 0]


class CriticEnsemble(nn.Module):
    """n independent Q networks evaluated in one vmapped call: returns [n, B]."""

    n: int = 2
    hidden: Sequence[int] = (256, 256)
    orthogonal_init: bool = False
    last_layer_scale: float | None = None
    layer_norm: bool = False
    """LayerNorm after each hidden layer (SSAR's critics)."""

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            QNet,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n,
        )
        q = ensemble(self.hidden, self.orthogonal_init, self.last_layer_scale, self.layer_norm)
        return q(obs, action)


class ValueNet(nn.Module):
    """V(s) -> [B]."""

    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1)(obs)[..., 0]
