"""AWR: Advantage-Weighted Regression (Peng, Kumar, Zhang & Levine, 2019), on a fixed dataset.

value:   y = r + gamma (1 - d) V'(s'),   L_V = 0.5 E[ ((1 - gamma)(y - V(s)))^2 ]
         (V(s) = net(s) / (1 - gamma): the reference's value normalizer)
actor:   A = r + gamma (1 - d) V(s') - V(s),   A~ = (A - mean A) / (std A + 1e-5)
         w = min(exp(A~ / beta), 20)
         L_pi = -E[ w log N(a; mu(s), sigma^2) ] + 10 * 0.5 E[ sum_j max(|mu_j(s)| - 1, 0)^2 ]
policy:  pi(s) = mu(s): a linear-output MLP with a small last layer and fixed std sigma

The reference (xbpeng/awr, learning/awr_agent.py) fits V to TD(lambda = 0.95) returns
recomputed over whole stored paths, then takes actor steps with advantages normalized
over its replay buffer. A flat dataset has no path structure the compiled loop can walk,
and returns precomputed from raw dataset rewards would also bypass every reward an
add-on writes into the batch (DARA's r - eta * delta_r). So this version uses TD(lambda)
with lambda = 0, the case computable from single transitions: the same fixed point
(V of the data's behaviour policy), bootstrapped from a Polyak-averaged copy of V (the
reference instead holds its targets fixed for 200 value steps), with advantages
normalized over the batch. Each step: one value step, then one actor step with
advantages from the new V. Optimizers are SGD with momentum 0.9, as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.jax_utils import copy_params, polyak
from shiftrl.core.types import Batch
from shiftrl.learners.base import NO_HOOKS, CommonConfig, Hooks, Learner, objective
from shiftrl.nets import MLP, ValueNet
from shiftrl.nets.policies import normal_log_prob

ADV_EPS = 1e-5


@dataclass(frozen=True)
class AWRConfig(CommonConfig):
    temperature: float = 1.0
    """beta: advantage weights are exp(A~ / beta) (`temp`)."""
    weight_clip: float = 20.0
    """Upper clip of the advantage weights."""
    action_std: float = 0.2
    """Fixed std of the Gaussian policy on [-1, 1] actions (0.4 for Hopper/Walker2d/HalfCheetah)."""
    bound_loss_weight: float = 10.0
    """Weight of the penalty on policy means outside [-1, 1]."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target value net used in the TD target."""
    actor_lr: float = 5e-5
    """SGD learning rate of the policy (5e-5 Ant/Humanoid/HalfCheetah, 1e-4 Hopper, 2.5e-5 Walker2d)."""
    critic_lr: float = 1e-2
    """SGD learning rate of the value net."""
    momentum: float = 0.9
    """SGD momentum of both optimizers."""
    init_output_scale: float = 0.01
    """Scale of the policy's last layer at init."""
    actor_hidden: tuple[int, ...] = (128, 64)
    """Hidden layer sizes of the policy."""
    critic_hidden: tuple[int, ...] = (128, 64)
    """Hidden layer sizes of the value net."""


class AWRState(struct.PyTreeNode):
    actor: TrainState
    value: TrainState
    value_target: dict
    step: jax.Array


class AWR(Learner):
    name = "awr"
    Config = AWRConfig
    description = "advantage-weighted regression: exp(A / beta) weighted max likelihood"
    paper = "Peng, Kumar, Zhang & Levine, 2019 (arXiv:1910.00177)"
    PRESETS = {
        "default": AWRConfig(),  # Ant-v2 / Humanoid-v2 in awr_configs.py
        "hopper": AWRConfig(action_std=0.4, actor_lr=1e-4),
        "walker2d": AWRConfig(action_std=0.4, actor_lr=2.5e-5),
        "halfcheetah": AWRConfig(action_std=0.4),
    }

    def __init__(self, config: AWRConfig, spec):
        super().__init__(config, spec)
        self.actor_net = MLP(
            config.actor_hidden, spec.act_dim, last_layer_scale=config.init_output_scale
        )
        self.value_net = ValueNet(config.critic_hidden)

    def init(self, rng: jax.Array) -> AWRState:
        c = self.config
        k_actor, k_value = jax.random.split(rng)
        obs = jnp.zeros((1, self.spec.obs_dim))
        value_params = self.value_net.init(k_value, obs)["params"]

        def ts(params, lr):
            return TrainState.create(
                apply_fn=None, params=params, tx=optax.sgd(lr, momentum=c.momentum)
            )

        return AWRState(
            actor=ts(self.actor_net.init(k_actor, obs)["params"], c.actor_lr),
            value=ts(value_params, c.critic_lr),
            value_target=copy_params(value_params),
            step=jnp.zeros((), jnp.int32),
        )

    # -- networks ---------------------------------------------------------------------
    def mu(self, params, obs):
        return self.actor_net.apply({"params": params}, obs)

    def v(self, params, obs):
        return self.value_net.apply({"params": params}, obs) / (1.0 - self.config.discount)

    def act(self, state: AWRState, obs: jax.Array) -> jax.Array:
        return jnp.clip(self.mu(state.actor.params, obs), -1.0, 1.0)

    def explore(self, state: AWRState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        mean = self.mu(state.actor.params, obs)
        return jnp.clip(mean + self.config.action_std * jax.random.normal(rng, mean.shape), -1, 1)

    def value(self, state: AWRState, obs: jax.Array) -> jax.Array:
        return self.v(state.value.params, obs)

    # -- losses -----------------------------------------------------------------------
    def td_target(self, value_params, batch: Batch) -> jax.Array:
        next_v = self.v(value_params, batch.next_obs)
        return batch.reward + self.config.discount * (1.0 - batch.terminal) * next_v

    def value_loss(self, value_params, state: AWRState, batch: Batch, hooks: Hooks):
        target = jax.lax.stop_gradient(self.td_target(state.value_target, batch))
        v = self.v(value_params, batch.obs)
        scaled = (1.0 - self.config.discount) * (target - v)
        terms, weights = hooks.critic(batch, {"td": 0.5 * scaled**2}, {"td": 1.0})
        loss, metrics = objective(terms, weights, "value")
        return loss, {**metrics, "value/v": v.mean(), "value/target": target.mean()}

    def advantage_weights(self, adv: jax.Array) -> jax.Array:
        c = self.config
        normalized = (adv - adv.mean()) / (adv.std() + ADV_EPS)
        return jnp.minimum(jnp.exp(normalized / c.temperature), c.weight_clip)

    def actor_loss(self, actor_params, batch: Batch, adv: jax.Array, hooks: Hooks):
        c = self.config
        mean = self.mu(actor_params, batch.obs)
        log_std = jnp.full_like(mean, jnp.log(c.action_std))
        weight = jax.lax.stop_gradient(self.advantage_weights(adv))
        bound = 0.5 * jnp.sum(jnp.maximum(jnp.abs(mean) - 1.0, 0.0) ** 2, axis=-1)
        terms = {
            "awr": weight * normal_log_prob(batch.action, mean, log_std),
            "bound": bound,
            "pi_action": jnp.clip(mean, -1.0, 1.0),
        }
        terms, weights = hooks.actor(batch, terms, {"awr": -1.0, "bound": c.bound_loss_weight})
        loss, metrics = objective(terms, weights, "actor")
        return loss, {
            **metrics,
            "actor/adv_weight": weight.mean(),
            "actor/adv_weight_max": weight.max(),
        }

    # -- update -------------------------------------------------------------------------
    def update(self, state: AWRState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        g_v, m_v = jax.grad(self.value_loss, has_aux=True)(state.value.params, state, batch, hooks)
        value = state.value.apply_gradients(grads=g_v)

        adv = self.td_target(value.params, batch) - self.v(value.params, batch.obs)
        g_pi, m_pi = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, batch, jax.lax.stop_gradient(adv), hooks
        )
        state = state.replace(
            actor=state.actor.apply_gradients(grads=g_pi),
            value=value,
            value_target=polyak(state.value_target, value.params, self.config.tau),
            step=state.step + 1,
        )
        return state, {**m_v, **m_pi}
