"""IQL: Offline Reinforcement Learning with Implicit Q-Learning (Kostrikov et al., 2021).

    value:   L_V = E[ |tau - 1(u < 0)| u^2 ],  u = min_i Q'_i(s, a) - V(s)        (expectile tau)
    critic:  L_Q = sum_i (Q_i(s, a) - (r + gamma (1 - d) V(s')))^2
    actor:   L_pi = -E[ min(exp(beta (min_i Q'_i(s, a) - V(s))), 100) log pi(a|s) ]   (AWR extraction)

Order as in the reference code: V(s') and the advantage are read before the value
step; the actor's learning rate follows a cosine decay over the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.jax_utils import adam_state, copy_params, expectile_loss, polyak
from shiftrl.core.types import Batch
from shiftrl.learners.base import NO_HOOKS, CommonConfig, Hooks, Learner, objective
from shiftrl.nets import CriticEnsemble, GaussianActor, ValueNet

EXP_ADV_MAX = 100.0


@dataclass(frozen=True)
class IQLConfig(CommonConfig):
    expectile: float = 0.7
    """tau of the expectile value loss (0.7 for locomotion, 0.9 for AntMaze)."""
    temperature: float = 3.0
    """beta of the advantage weights (3.0 for locomotion, 10.0 for AntMaze)."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    actor_lr: float = 3e-4
    """Adam learning rate of the policy (peak of the cosine schedule)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    value_lr: float = 3e-4
    """Adam learning rate of V."""
    cosine_actor_lr: bool = True
    """Cosine-decay the actor learning rate to 0 over the run (reference code)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of policy, critics and V."""
    actor_dropout: float = 0.0
    """Dropout in the policy MLP (0.1 in some AntMaze/Kitchen configs)."""
    normalize_reward_by_returns: bool = True
    """Locomotion: r *= 1000 / (max - min episode return)."""


class IQLState(struct.PyTreeNode):
    actor: TrainState
    critic: TrainState
    value: TrainState
    critic_target: dict
    step: jax.Array


class IQL(Learner):
    name = "iql"
    Config = IQLConfig
    description = "expectile value learning + advantage-weighted policy extraction"
    paper = "Kostrikov, Nair & Levine, ICLR 2022"
    PRESETS = {
        "locomotion": IQLConfig(),
        "antmaze": IQLConfig(
            expectile=0.9,
            temperature=10.0,
            normalize_reward_by_returns=False,
            reward_bias=-1.0,
        ),
    }

    def __init__(self, config: IQLConfig, spec):
        super().__init__(config, spec)
        self.actor_net = GaussianActor(spec.act_dim, config.hidden, config.actor_dropout)
        self.critic_net = CriticEnsemble(2, config.hidden)
        self.value_net = ValueNet(config.hidden)

    def init(self, rng: jax.Array) -> IQLState:
        c = self.config
        k_a, k_q, k_v = jax.random.split(rng, 3)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        actor_lr = (
            optax.cosine_decay_schedule(c.actor_lr, max(self.spec.total_steps, 1))
            if c.cosine_actor_lr
            else c.actor_lr
        )
        critic_params = self.critic_net.init(k_q, obs, act)["params"]

        return IQLState(
            actor=adam_state(self.actor_net.init(k_a, obs)["params"], actor_lr),
            critic=adam_state(critic_params, c.critic_lr),
            value=adam_state(self.value_net.init(k_v, obs)["params"], c.value_lr),
            critic_target=copy_params(critic_params),
            step=jnp.zeros((), jnp.int32),
        )

    # -- networks ---------------------------------------------------------------------
    def q(self, params, obs, action):
        return self.critic_net.apply({"params": params}, obs, action)

    def v(self, params, obs):
        return self.value_net.apply({"params": params}, obs)

    def act(self, state: IQLState, obs: jax.Array) -> jax.Array:
        mean, _ = self.actor_net.apply({"params": state.actor.params}, obs)
        return mean

    def explore(self, state: IQLState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        mean, log_std = self.actor_net.apply({"params": state.actor.params}, obs)
        return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape), -1.0, 1.0)

    def value(self, state: IQLState, obs: jax.Array) -> jax.Array:
        return self.v(state.value.params, obs)

    # -- losses -----------------------------------------------------------------------
    def value_loss(self, value_params, state: IQLState, batch: Batch):
        target_q = self.q(state.critic_target, batch.obs, batch.action).min(0)
        v = self.v(value_params, batch.obs)
        terms = {"expectile": expectile_loss(target_q - v, self.config.expectile)}
        loss, metrics = objective(terms, {"expectile": 1.0}, "value")
        return loss, {**metrics, "value/v": v.mean()}

    def critic_loss(self, critic_params, state: IQLState, batch: Batch, next_v, hooks: Hooks):
        target = batch.reward + self.config.discount * (1.0 - batch.terminal) * next_v
        q = self.q(critic_params, batch.obs, batch.action)
        terms = {"td": jnp.mean((q - target) ** 2, axis=0)}
        terms, weights = hooks.critic(batch, terms, {"td": 1.0})
        loss, metrics = objective(terms, weights, "critic")
        return loss, {**metrics, "critic/q": q.mean()}

    def actor_loss(self, actor_params, batch: Batch, adv, rng, hooks: Hooks):
        train = self.config.actor_dropout > 0
        rngs = {"dropout": rng} if train else {}
        mean, log_std = self.actor_net.apply({"params": actor_params}, batch.obs, train, rngs=rngs)
        log_prob = GaussianActor.log_prob(mean, log_std, batch.action)
        weight = jnp.minimum(jnp.exp(self.config.temperature * adv), EXP_ADV_MAX)
        terms = {"awr": weight * log_prob, "pi_action": mean}
        terms, weights = hooks.actor(batch, terms, {"awr": -1.0})
        loss, metrics = objective(terms, weights, "actor")
        return loss, {**metrics, "actor/adv_weight": weight.mean()}

    # -- update -------------------------------------------------------------------------
    def update_values(self, state: IQLState, batch: Batch, hooks: Hooks = NO_HOOKS):
        """The V and Q steps alone (SSAR's trust labels need only these)."""
        next_v = self.v(state.value.params, batch.next_obs)
        g_v, m_v = jax.grad(self.value_loss, has_aux=True)(state.value.params, state, batch)
        g_q, m_q = jax.grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, next_v, hooks
        )
        critic = state.critic.apply_gradients(grads=g_q)
        state = state.replace(
            value=state.value.apply_gradients(grads=g_v),
            critic=critic,
            critic_target=polyak(state.critic_target, critic.params, self.config.tau),
            step=state.step + 1,
        )
        return state, {**m_v, **m_q}

    def advantage(self, state: IQLState, obs: jax.Array, action: jax.Array) -> jax.Array:
        """min_i Q'_i(s, a) - V(s)."""
        return self.q(state.critic_target, obs, action).min(0) - self.v(state.value.params, obs)

    def update(self, state: IQLState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        adv = self.advantage(state, batch.obs, batch.action)  # read before the value step
        g_pi, m_pi = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, batch, adv, rng, hooks
        )
        state, m_values = self.update_values(state, batch, hooks)
        state = state.replace(actor=state.actor.apply_gradients(grads=g_pi))
        return state, {**m_values, **m_pi}
