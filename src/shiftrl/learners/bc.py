"""Behaviour cloning: a deterministic tanh policy regressed onto dataset actions (MSE),
as CORL's `any_percent_bc` with percentage 100."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.jax_utils import adam_state
from shiftrl.core.types import Batch
from shiftrl.learners.base import NO_HOOKS, CommonConfig, Hooks, Learner, objective
from shiftrl.nets import DeterministicActor


@dataclass(frozen=True)
class BCConfig(CommonConfig):
    actor_lr: float = 3e-4
    """Adam learning rate."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the policy MLP."""


class BCState(struct.PyTreeNode):
    actor: TrainState
    step: jax.Array


class BC(Learner):
    name = "bc"
    Config = BCConfig
    description = "behaviour cloning (MSE on dataset actions)"
    paper = "Pomerleau 1991; CORL's BC baseline"
    PRESETS = {"default": BCConfig()}
    uses_rewards = False

    def __init__(self, config: BCConfig, spec):
        super().__init__(config, spec)
        self.actor_net = DeterministicActor(spec.act_dim, config.actor_hidden)

    def init(self, rng: jax.Array) -> BCState:
        params = self.actor_net.init(rng, jnp.zeros((1, self.spec.obs_dim)))["params"]
        return BCState(adam_state(params, self.config.actor_lr), jnp.zeros((), jnp.int32))

    def act(self, state: BCState, obs: jax.Array) -> jax.Array:
        return self.actor_net.apply({"params": state.actor.params}, obs)

    def actor_loss(self, params, batch: Batch, hooks: Hooks):
        pi = self.actor_net.apply({"params": params}, batch.obs)
        terms = {"bc": jnp.mean((pi - batch.action) ** 2, axis=-1), "pi_action": pi}
        terms, weights = hooks.actor(batch, terms, {"bc": 1.0})
        return objective(terms, weights, "actor")

    def update(self, state: BCState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        grads, metrics = jax.grad(self.actor_loss, has_aux=True)(state.actor.params, batch, hooks)
        return state.replace(
            actor=state.actor.apply_gradients(grads=grads), step=state.step + 1
        ), metrics
