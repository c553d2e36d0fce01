"""BRAC-p: Behavior Regularized Offline RL (Wu, Tucker & Nachum, 2019), primal, policy-regularized.

behaviour:  pi_b(a|s) tanh-Gaussian, maximum likelihood for the first `behavior_steps` steps,
            then frozen:  L_b = E[ alpha_b log pi_b(a~|s) - log pi_b(clip(a, 1e-3)|s) ],  a~ ~ pi_b,
            alpha_b tuned towards entropy -|A|   (the reference's `bc` agent)
divergence: D(s) = 1/n sum_k [log pi(a_k|s) - log pi_b(clip(a_k, 1e-3)|s)],  a_k ~ pi(.|s), n = 4
critic:     y = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha_ent log pi(a'|s')),  a' ~ pi(.|s')
            L_Q = sum_j (Q_j(s, a) - y)^2       (BRAC-v would also subtract alpha D(s') from y)
actor:      L_pi = E[ alpha_ent log pi(a~|s) + alpha D(s) - 1[t > warm_start] min_j Q_j(s, a~) ]
policy:     pi(s) = tanh(mu(s))

As google-research/behavior_regularized_offline_rl (brac_primal_agent.py with
`value_penalty=False`, divergences.py's KL primal estimate): the behaviour policy is a
separate max-likelihood run before BRAC, here the first phase of the same run (a
`lax.cond` on the step; its metrics are NaN while the other phase runs), and the
warm start counts from the end of that phase. Per step: critics, then the actor with the
new critics, then the target critics. The reference's primal agent has no entropy term
(alpha_entropy = 0, not trained); `auto_entropy=True` tunes one as SAC does.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.errors import ConfigError
from shiftrl.core.jax_utils import adam_state, copy_params, nan_like, polyak
from shiftrl.core.types import Batch
from shiftrl.learners.base import NO_HOOKS, CommonConfig, Hooks, Learner, objective, td_critic_loss
from shiftrl.nets import CriticEnsemble, SquashedGaussianActor, tanh_normal_log_prob

CLIP_EPS = 1e-3  # actions are clipped to [-1 + eps, 1 - eps] before a density is evaluated


@dataclass(frozen=True)
class BRACPConfig(CommonConfig):
    normalize_states: bool = False
    """The reference code trains on raw observations."""
    alpha: float = 0.1
    """Fixed weight of the KL divergence (README / run_primal.sh; the agent's default is 1.0)."""
    value_penalty: bool = False
    """Also subtract alpha D(s') in the TD target: True gives BRAC-v."""
    n_div_samples: int = 4
    """Policy samples per state in the KL estimate."""
    warm_start: int = 20_000
    """Steps after the behaviour phase in which the actor ignores Q (reference `warm_start`)."""
    behavior_steps: int = 300_000
    """Length of the behaviour-cloning phase (run_bc.sh: 300k steps)."""
    behavior_lr: float = 5e-4
    """Adam learning rate of the behaviour policy and its entropy weight (run_bc.sh)."""
    behavior_hidden: tuple[int, ...] = (200, 200)
    """Hidden layer sizes of the behaviour policy."""
    entropy_coef: float = 0.0
    """Fixed entropy weight alpha_ent of the actor and target (reference: 0)."""
    auto_entropy: bool = False
    """Tune alpha_ent (from 1.0, log-parameterised) towards entropy -|A| instead."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics (every step)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the policy (README's PLR)."""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critics."""
    alpha_lr: float = 1e-3
    """Adam learning rate of alpha_ent (with `auto_entropy`)."""
    log_std_min: float = -5.0
    """Lower end of the (tanh-squashed) log-std range of both policies (networks.py)."""
    log_std_max: float = 0.0
    """Upper end of the log-std range of both policies."""
    actor_hidden: tuple[int, ...] = (200, 200)
    """Hidden layer sizes of the policy."""
    critic_hidden: tuple[int, ...] = (300, 300)
    """Hidden layer sizes of each critic."""


class BRACPState(struct.PyTreeNode):
    behavior: TrainState
    behavior_log_alpha: TrainState
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    """Entropy weight of the actor (trained only with `auto_entropy`)."""
    critic_target: dict
    step: jax.Array


class BRACP(Learner):
    name = "bracp"
    Config = BRACPConfig
    description = "behaviour-regularized actor-critic: sampled KL to a cloned behaviour policy"
    paper = "Wu, Tucker & Nachum, 2019 (arXiv:1911.11361)"
    PRESETS = {"default": BRACPConfig(), "bracv": BRACPConfig(value_penalty=True)}

    def __init__(self, config: BRACPConfig, spec):
        super().__init__(config, spec)
        if config.behavior_steps >= spec.total_steps:
            raise ConfigError(
                f"bracp: behavior_steps ({config.behavior_steps}) leaves no steps for BRAC in a "
                f"{spec.total_steps}-step run; lower it with --set behavior_steps=N"
            )
        bounds = (config.log_std_min, config.log_std_max)
        self.actor_net = SquashedGaussianActor(spec.act_dim, config.actor_hidden, *bounds)
        self.behavior_net = SquashedGaussianActor(spec.act_dim, config.behavior_hidden, *bounds)
        self.critic_net = CriticEnsemble(2, config.critic_hidden)
        self.target_entropy = -float(spec.act_dim)

    def init(self, rng: jax.Array) -> BRACPState:
        c = self.config
        k_b, k_actor, k_critic = jax.random.split(rng, 3)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        critic_params = self.critic_net.init(k_critic, obs, act)["params"]

        return BRACPState(
            behavior=adam_state(self.behavior_net.init(k_b, obs)["params"], c.behavior_lr),
            behavior_log_alpha=adam_state({"value": jnp.zeros(())}, c.behavior_lr),
            actor=adam_state(self.actor_net.init(k_actor, obs)["params"], c.actor_lr),
            critic=adam_state(critic_params, c.critic_lr),
            log_alpha=adam_state({"value": jnp.zeros(())}, c.alpha_lr),
            critic_target=copy_params(critic_params),
            step=jnp.zeros((), jnp.int32),
        )

    # -- networks ---------------------------------------------------------------------
    @staticmethod
    def sample(net, params, obs, rng, n: int | None = None):
        """Reparameterised a = tanh(u) and log pi(a|s); with n, shapes [n, B, A] and [n, B]."""
        mean, log_std = net.apply({"params": params}, obs)
        shape = mean.shape if n is None else (n, *mean.shape)
        u = mean + jnp.exp(log_std) * jax.random.normal(rng, shape)
        return jnp.tanh(u), tanh_normal_log_prob(u, mean, log_std)

    @staticmethod
    def log_density(net, params, obs, action):
        """log pi(a|s) of given actions ([..., B, A]), clipped away from +-1 first."""
        mean, log_std = net.apply({"params": params}, obs)
        u = jnp.arctanh(jnp.clip(action, -1.0 + CLIP_EPS, 1.0 - CLIP_EPS))
        return tanh_normal_log_prob(u, mean, log_std)

    def q(self, params, obs, action):
        return self.critic_net.apply({"params": params}, obs, action)  # [2, B]

    def act(self, state: BRACPState, obs: jax.Array) -> jax.Array:
        mean, _ = self.actor_net.apply({"params": state.actor.params}, obs)
        return jnp.tanh(mean)

    def explore(self, state: BRACPState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        return self.sample(self.actor_net, state.actor.params, obs, rng)[0]

    def value(self, state: BRACPState, obs: jax.Array) -> jax.Array:
        return self.q(state.critic.params, obs, self.act(state, obs)).min(0)

    def alpha_entropy(self, state: BRACPState) -> jax.Array:
        if self.config.auto_entropy:
            return jnp.exp(state.log_alpha.params["value"])
        return jnp.asarray(self.config.entropy_coef)

    # -- losses -----------------------------------------------------------------------
    def behavior_loss(self, behavior_params, state: BRACPState, batch: Batch, rng):
        alpha_b = jnp.exp(jax.lax.stop_gradient(state.behavior_log_alpha.params["value"]))
        _, log_pi = self.sample(self.behavior_net, behavior_params, batch.obs, rng)
        terms = {
            "entropy": log_pi,
            "nll": -self.log_density(self.behavior_net, behavior_params, batch.obs, batch.action),
        }
        loss, metrics = objective(terms, {"entropy": alpha_b, "nll": 1.0}, "behavior")
        return loss, ({**metrics, "behavior/alpha": alpha_b}, jax.lax.stop_gradient(log_pi))

    def kl_estimate(self, actor_params, behavior_params, obs, rng) -> jax.Array:
        """D(s) = mean_k [log pi(a_k|s) - log pi_b(a_k|s)], a_k ~ pi(.|s) -> [B]."""
        a, log_pi = self.sample(self.actor_net, actor_params, obs, rng, self.config.n_div_samples)
        return jnp.mean(log_pi - self.log_density(self.behavior_net, behavior_params, obs, a), 0)

    def td_target(self, state: BRACPState, batch: Batch, rng) -> jax.Array:
        c = self.config
        k_next, k_div = jax.random.split(rng)
        next_a, next_logp = self.sample(self.actor_net, state.actor.params, batch.next_obs, k_next)
        next_v = self.q(state.critic_target, batch.next_obs, next_a).min(0)
        next_v = next_v - self.alpha_entropy(state) * next_logp
        if c.value_penalty:
            div = self.kl_estimate(state.actor.params, state.behavior.params, batch.next_obs, k_div)
            next_v = next_v - c.alpha * div
        return jax.lax.stop_gradient(batch.reward + c.discount * (1.0 - batch.terminal) * next_v)

    def critic_loss(self, critic_params, state: BRACPState, batch: Batch, rng, hooks: Hooks):
        q = self.q(critic_params, batch.obs, batch.action)
        return td_critic_loss(q, self.td_target(state, batch, rng), batch, hooks)

    def actor_loss(self, actor_params, state: BRACPState, batch: Batch, rng, hooks: Hooks):
        c = self.config
        k_pi, k_div = jax.random.split(rng)
        pi, log_pi = self.sample(self.actor_net, actor_params, batch.obs, k_pi)
        q_start = (state.step - c.behavior_steps > c.warm_start).astype(jnp.float32)
        terms = {
            "entropy": log_pi,
            "kl": self.kl_estimate(actor_params, state.behavior.params, batch.obs, k_div),
            "q": self.q(state.critic.params, batch.obs, pi).min(0),
            "pi_action": pi,
            "log_prob": log_pi,
        }
        weights = {
            "entropy": jax.lax.stop_gradient(self.alpha_entropy(state)),
            "kl": c.alpha,
            "q": -q_start,
        }
        terms, weights = hooks.actor(batch, terms, weights)
        loss, metrics = objective(terms, weights, "actor")
        return loss, (metrics, jax.lax.stop_gradient(log_pi))

    def entropy_loss(self, log_alpha, log_pi, target_entropy):
        return -jnp.mean(log_alpha["value"] * (log_pi + target_entropy))

    # -- update -------------------------------------------------------------------------
    def behavior_step(self, state: BRACPState, batch: Batch, rng):
        g_b, (metrics, log_pi) = jax.grad(self.behavior_loss, has_aux=True)(
            state.behavior.params, state, batch, rng
        )
        g_alpha = jax.grad(self.entropy_loss)(
            state.behavior_log_alpha.params, log_pi, self.target_entropy
        )
        return state.replace(
            behavior=state.behavior.apply_gradients(grads=g_b),
            behavior_log_alpha=state.behavior_log_alpha.apply_gradients(grads=g_alpha),
        ), metrics

    def brac_step(self, state: BRACPState, batch: Batch, rng, hooks: Hooks):
        c = self.config
        k_critic, k_actor = jax.random.split(rng)
        g_q, m_q = jax.grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, k_critic, hooks
        )
        state = state.replace(critic=state.critic.apply_gradients(grads=g_q))

        g_pi, (m_pi, log_pi) = jax.grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, k_actor, hooks
        )
        log_alpha = state.log_alpha
        if c.auto_entropy:
            g_alpha = jax.grad(self.entropy_loss)(log_alpha.params, log_pi, self.target_entropy)
            log_alpha = log_alpha.apply_gradients(grads=g_alpha)
        return state.replace(
            actor=state.actor.apply_gradients(grads=g_pi),
            log_alpha=log_alpha,
            critic_target=polyak(state.critic_target, state.critic.params, c.tau),
        ), {**m_q, **m_pi, "actor/alpha_entropy": self.alpha_entropy(state)}

    def update(self, state: BRACPState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        def behavior(state):
            return self.behavior_step(state, batch, rng)

        def brac(state):
            return self.brac_step(state, batch, rng, hooks)

        def skipped(step_fn):  # NaN metrics of the phase that does not run
            shapes = jax.eval_shape(step_fn, state)[1]
            return nan_like(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))

        def behavior_phase(state):
            state, metrics = behavior(state)
            return state, {**metrics, **skipped(brac)}

        def brac_phase(state):
            state, metrics = brac(state)
            return state, {**skipped(behavior), **metrics}

        state, metrics = jax.lax.cond(
            state.step < self.config.behavior_steps, behavior_phase, brac_phase, state
        )
        return state.replace(step=state.step + 1), metrics
