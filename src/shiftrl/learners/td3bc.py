"""TD3+BC: A Minimalist Approach to Offline Reinforcement Learning (Fujimoto & Gu, 2021).

critic:  y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + clip(eps, -c, c), -1, 1))
         L_Q = sum_i (Q_i(s, a) - y)^2
actor:   lambda = alpha / mean|Q_1(s, pi(s))|   (on steps 2, 4, ... as in the reference code)
         L_pi = -lambda Q_1(s, pi(s)) + (pi(s) - a)^2        (every `policy_freq` steps)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.jax_utils import adam_state, copy_params, nan_like, polyak
from shiftrl.core.types import Batch
from shiftrl.learners.base import NO_HOOKS, CommonConfig, Hooks, Learner, objective
from shiftrl.nets import CriticEnsemble, DeterministicActor


@dataclass(frozen=True)
class TD3BCConfig(CommonConfig):
    alpha: float = 2.5
    """Q-term scale: the actor uses lambda = alpha / mean|Q|."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target networks (updated with the actor)."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise (actions in [-1, 1])."""
    noise_clip: float = 0.5
    """Clip of the target smoothing noise."""
    policy_freq: int = 2
    """Actor and targets are updated every `policy_freq` critic steps."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of each critic."""
    bc_weight: float = 1.0
    """Weight of the BC term (0 with alpha = 1 is TD3 with Q normalization: SPOT's backbone)."""
    critic_layer_norm: bool = False
    """LayerNorm after each critic hidden layer (SSAR's TD3+BC)."""
    actor_dropout: float = 0.0
    """SPOT uses 0.1 on locomotion; TD3+BC uses none."""
    target_actor_dropout: bool = True
    """With actor_dropout > 0: the target actor computing the TD target's next action keeps
    its dropout too (SPOT's official code, whose target actor is a training-mode copy)."""
    expl_noise: float = 0.1
    """Std of the Gaussian exploration noise when acting online (fine-tuning only)."""


class TD3BCState(struct.PyTreeNode):
    actor: TrainState
    critic: TrainState
    actor_target: dict
    critic_target: dict
    step: jax.Array


class TD3BC(Learner):
    name = "td3bc"
    Config = TD3BCConfig
    description = "TD3 with a behaviour-cloning term and Q normalization"
    paper = "Fujimoto & Gu, NeurIPS 2021"
    PRESETS = {
        "default": TD3BCConfig(),
        # SPOT's backbone: TD3 with Q normalization and actor dropout; the support
        # constraint comes from the `spot` add-on
        "spot": TD3BCConfig(alpha=1.0, bc_weight=0.0, actor_dropout=0.1),
        # SSAR's backbone: LayerNorm critics; beta(s) comes from the `ssar` add-on
        # SSAR's official online phase acts with the deterministic actor (no N(0, 0.1) noise)
        "ssar": TD3BCConfig(critic_layer_norm=True, expl_noise=0.0),
    }

    def __init__(self, config: TD3BCConfig, spec):
        super().__init__(config, spec)
        self.actor_net = DeterministicActor(spec.act_dim, config.actor_hidden, config.actor_dropout)
        self.critic_net = CriticEnsemble(
            2, config.critic_hidden, layer_norm=config.critic_layer_norm
        )

    def init(self, rng: jax.Array) -> TD3BCState:
        c, k_actor, k_critic = self.config, *jax.random.split(rng, 2)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        actor_params = self.actor_net.init(k_actor, obs)["params"]
        critic_params = self.critic_net.init(k_critic, obs, act)["params"]
        return TD3BCState(
            actor=adam_state(actor_params, c.actor_lr),
            critic=adam_state(critic_params, c.critic_lr),
            actor_target=copy_params(actor_params),
            critic_target=copy_params(critic_params),
            step=jnp.zeros((), jnp.int32),
        )

    # -- networks ---------------------------------------------------------------------
    def pi(self, params, obs, rng=None):
        if rng is None or self.config.actor_dropout == 0:
            return self.actor_net.apply({"params": params}, obs)
        return self.actor_net.apply({"params": params}, obs, True, rngs={"dropout": rng})

    def q(self, params, obs, action):
        return self.critic_net.apply({"params": params}, obs, action)  # [2, B]

    def act(self, state: TD3BCState, obs: jax.Array) -> jax.Array:
        return self.pi(state.actor.params, obs)

    def explore(self, state: TD3BCState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        noise = self.config.expl_noise * jax.random.normal(rng, (obs.shape[0], self.spec.act_dim))
        return jnp.clip(self.act(state, obs) + noise, -1.0, 1.0)

    def updates_actor(self, state: TD3BCState) -> jax.Array:
        return (state.step + 1) % self.config.policy_freq == 0

    def value(self, state: TD3BCState, obs: jax.Array) -> jax.Array:
        return self.q(state.critic.params, obs, self.act(state, obs)).min(0)

    # -- losses -----------------------------------------------------------------------
    def critic_loss(self, critic_params, state: TD3BCState, batch: Batch, rng, hooks: Hooks):
        c = self.config
        noise = jnp.clip(
            c.policy_noise * jax.random.normal(rng, batch.action.shape), -c.noise_clip, c.noise_clip
        )
        # SPOT's target actor is a copy in training mode: its dropout stays on
        k_drop = jax.random.fold_in(rng, 1) if c.target_actor_dropout else None
        next_action = jnp.clip(
            self.pi(state.actor_target, batch.next_obs, k_drop) + noise, -1.0, 1.0
        )
        next_q = self.q(state.critic_target, batch.next_obs, next_action).min(0)
        target = jax.lax.stop_gradient(batch.reward + c.discount * (1.0 - batch.terminal) * next_q)
        q = self.q(critic_params, batch.obs, batch.action)
        terms = {"td": jnp.sum((q - target) ** 2, axis=0)}
        terms, weights = hooks.critic(batch, terms, {"td": 1.0})
        loss, metrics = objective(terms, weights, "critic")
        return loss, {**metrics, "critic/q": q.mean(), "critic/target": target.mean()}

    def actor_loss(self, actor_params, state: TD3BCState, batch: Batch, rng, hooks: Hooks):
        pi = self.pi(actor_params, batch.obs, rng)
        q = self.q(state.critic.params, batch.obs, pi)[0]
        lam = jax.lax.stop_gradient(self.config.alpha / jnp.abs(q).mean())
        terms = {"q": q, "bc": jnp.mean((pi - batch.action) ** 2, axis=-1), "pi_action": pi}
        weights = {"q": -lam, "bc": self.config.bc_weight}
        terms, weights = hooks.actor(batch, terms, weights)
        loss, metrics = objective(terms, weights, "actor")
        return loss, {**metrics, "actor/lambda": lam}

    # -- update -------------------------------------------------------------------------
    def update(self, state: TD3BCState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        k_critic, k_actor = jax.random.split(rng)
        grads, critic_metrics = jax.grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, k_critic, hooks
        )
        state = state.replace(critic=state.critic.apply_gradients(grads=grads))

        def update_actor(state):
            grads, metrics = jax.grad(self.actor_loss, has_aux=True)(
                state.actor.params, state, batch, k_actor, hooks
            )
            actor = state.actor.apply_gradients(grads=grads)
            tau = self.config.tau
            return state.replace(
                actor=actor,
                actor_target=polyak(state.actor_target, actor.params, tau),
                critic_target=polyak(state.critic_target, state.critic.params, tau),
            ), metrics

        def skip_actor(state):
            shapes = jax.eval_shape(update_actor, state)[1]
            return state, nan_like(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

        state, actor_metrics = jax.lax.cond(
            self.updates_actor(state), update_actor, skip_actor, state
        )
        return state.replace(step=state.step + 1), {**critic_metrics, **actor_metrics}
