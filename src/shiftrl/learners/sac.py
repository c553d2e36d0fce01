"""SAC: Soft Actor-Critic (Haarnoja et al., 2018), with automatic entropy tuning.

    actor:   L_pi = E[ alpha log pi(a~|s) - min_i Q_i(s, a~) ],   a~ ~ pi(.|s) (reparameterised)
    entropy: L_alpha = -E[ log_alpha (log pi(a~|s) + target_entropy) ],  target_entropy = -|A|
    critic:  y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s')
             L_Q = sum_i (Q_i(s, a) - y)^2
All losses use the same pre-update parameters. SAC trains the zoo's behaviour policies
online and is the base CQL extends (`cql.py` adds the conservative term).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.jax_utils import adam_state, copy_params, polyak
from shiftrl.core.types import Batch
from shiftrl.learners.base import NO_HOOKS, CommonConfig, Hooks, Learner, objective
from shiftrl.nets import CriticEnsemble, TanhGaussianActor


@dataclass(frozen=True)
class SACConfig(CommonConfig):
    normalize_states: bool = False
    """Online SAC sees raw observations."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 5e-3
    """Soft target update rate."""
    target_update_period: int = 1
    """Soft-update the target critics every k steps."""
    policy_lr: float = 3e-4
    """Adam learning rate of the policy and the entropy temperature."""
    qf_lr: float = 3e-4
    """Adam learning rate of the critics."""
    alpha_multiplier: float = 1.0
    """Scales the SAC temperature exp(log_alpha)."""
    auto_entropy: bool = True
    """Tune the temperature towards target entropy -act_dim."""
    backup_entropy: bool = True
    """Subtract alpha * log pi(a'|s') in the TD target (soft Bellman backup)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of policy and critics."""
    orthogonal_init: bool = False
    """Orthogonal init (gain sqrt 2 hidden, 1e-2 output)."""
    critic_layer_norm: bool = False
    """LayerNorm after each critic hidden layer (SSAR's CQL)."""
    clip_target_at_zero: bool = False
    """Clamp the TD target at >= 0 (MOBILE, which assumes non-negative returns)."""
    log_std_min: float = -20.0
    """Lower clip of the policy's log sigma (OfflineRL-Kit's MOPO / MOBILE: -5)."""
    log_std_offset: float = -1.0
    """Initial offset of the policy's log sigma (CORL's -1; OfflineRL-Kit: 0)."""
    alpha_max: float | None = None
    """Clamp the temperature at this value (OfflineRL-Kit clamps alpha to [0, 1])."""
    actor_lr_cosine: bool = False
    """Cosine-anneal the actor's learning rate to 0 over the run (OfflineRL-Kit's MOPO /
    MOBILE: CosineAnnealingLR over all epochs)."""
    actor_on_target_critics: bool = False
    """The actor maximises the target critics' min Q instead of the online critics' (the
    MOBILE fork MOREC released: `critics_old` in the actor loss)."""


class SACState(struct.PyTreeNode):
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    critic_target: dict
    step: jax.Array
    extra: dict
    """Learner-specific additions (CQL's Lagrange multiplier)."""


OFFLINERL_KIT = {
    "policy_lr": 1e-4,
    "qf_lr": 3e-4,
    "log_std_min": -5.0,
    "log_std_offset": 0.0,
    "alpha_max": 1.0,
    "actor_lr_cosine": True,
}
"""MOPO / MOBILE's SAC (OfflineRL-Kit): actor and temperature lr 1e-4, critics 3e-4, log
sigma in [-5, 2] starting around 0, alpha <= 1, the actor's lr cosine-annealed over the run."""


class SAC(Learner):
    name = "sac"
    Config = SACConfig
    description = "soft actor-critic (online; the zoo's behaviour policies)"
    paper = "Haarnoja, Zhou, Abbeel & Levine, ICML 2018"
    PRESETS = {
        "default": SACConfig(),
        "zoo": SACConfig(hidden=(128, 128)),
        "mopo": SACConfig(**OFFLINERL_KIT),
        # MOBILE (official gym configs): as mopo, deterministic backup, TD target clamped at 0
        "mobile": SACConfig(**OFFLINERL_KIT, backup_entropy=False, clip_target_at_zero=True),
    }

    def __init__(self, config: SACConfig, spec):
        super().__init__(config, spec)
        self.actor_net = TanhGaussianActor(
            spec.act_dim,
            config.hidden,
            config.orthogonal_init,
            log_std_offset=config.log_std_offset,
            log_std_min=config.log_std_min,
        )
        self.critic_net = CriticEnsemble(
            2, config.hidden, config.orthogonal_init, 1e-2, config.critic_layer_norm
        )
        self.target_entropy = -float(spec.act_dim)

    def init(self, rng: jax.Array) -> SACState:
        c = self.config
        k_a, k_q, k_s = jax.random.split(rng, 3)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        critic_params = self.critic_net.init(k_q, obs, act)["params"]
        return SACState(
            actor=adam_state(self.actor_net.init(k_a, obs, k_s)["params"], self.actor_lr()),
            critic=adam_state(critic_params, c.qf_lr),
            log_alpha=adam_state({"value": jnp.zeros(())}, c.policy_lr),
            critic_target=copy_params(critic_params),
            step=jnp.zeros((), jnp.int32),
            extra=self.init_extra(),
        )

    def init_extra(self) -> dict:
        return {}

    def actor_lr(self):
        """The actor's learning rate: constant, or cosine-annealed over the run."""
        c = self.config
        if not c.actor_lr_cosine:
            return c.policy_lr
        import optax

        return optax.cosine_decay_schedule(c.policy_lr, max(self.spec.total_steps, 1))

    # -- networks ---------------------------------------------------------------------
    def sample(self, actor_params, obs, rng):
        return self.actor_net.apply({"params": actor_params}, obs, rng)

    def q(self, params, obs, action):
        return self.critic_net.apply({"params": params}, obs, action)

    def act(self, state: SACState, obs: jax.Array) -> jax.Array:
        return self.actor_net.apply(
            {"params": state.actor.params}, obs, method=TanhGaussianActor.deterministic
        )

    def explore(self, state: SACState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        return self.sample(state.actor.params, obs, rng)[0]

    def policy_dist(self, state: SACState, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std) of the pre-tanh Gaussian pi(u|s) (SSAR's likelihood threshold)."""
        return self.actor_net.apply(
            {"params": state.actor.params}, obs, method=TanhGaussianActor.dist
        )

    def value(self, state: SACState, obs: jax.Array) -> jax.Array:
        return self.q(state.critic.params, obs, self.act(state, obs)).min(0)

    def alpha(self, state: SACState) -> jax.Array:
        alpha = jnp.exp(state.log_alpha.params["value"]) * self.config.alpha_multiplier
        if self.config.alpha_max is not None:
            alpha = jnp.minimum(alpha, self.config.alpha_max)
        return alpha

    # -- losses -----------------------------------------------------------------------
    def policy_q_term(self, actor_params, state, batch: Batch, q_pi: jax.Array) -> jax.Array:
        """The quantity the actor maximises besides entropy (CQL swaps in BC at the start)."""
        return q_pi

    def actor_loss(self, actor_params, state: SACState, batch: Batch, rng, hooks: Hooks):
        alpha = jax.lax.stop_gradient(self.alpha(state))
        pi, log_pi = self.sample(actor_params, batch.obs, rng)
        critic = state.critic_target if self.config.actor_on_target_critics else state.critic.params
        q_pi = self.q(critic, batch.obs, pi).min(0)
        terms = {
            "entropy": log_pi,
            "q": self.policy_q_term(actor_params, state, batch, q_pi),
            "pi_action": pi,
            "log_prob": log_pi,
        }
        terms, weights = hooks.actor(batch, terms, {"entropy": alpha, "q": -1.0})
        loss, metrics = objective(terms, weights, "actor")
        metrics = {**metrics, "actor/alpha": alpha, "actor/log_pi": log_pi.mean()}
        return loss, (metrics, jax.lax.stop_gradient(log_pi))

    def alpha_loss(self, log_alpha, log_pi):
        return -jnp.mean(log_alpha["value"] * jax.lax.stop_gradient(log_pi + self.target_entropy))

    def td_target(self, state: SACState, batch: Batch, rng) -> jax.Array:
        next_a, next_logp = self.sample(state.actor.params, batch.next_obs, rng)
        target_q = self.q(state.critic_target, batch.next_obs, next_a).min(0)
        return self.soft_backup(state, batch, target_q, next_logp)

    def soft_backup(self, state: SACState, batch: Batch, target_q, next_logp) -> jax.Array:
        """y = r + gamma (1 - done) (min_i Q'_i - alpha log pi'(a'|s')) without gradient; the
        entropy term only with `backup_entropy`, y clamped at 0 with `clip_target_at_zero`."""
        if self.config.backup_entropy:
            target_q = target_q - self.alpha(state) * next_logp
        target = batch.reward + self.config.discount * (1.0 - batch.terminal) * target_q
        if self.config.clip_target_at_zero:
            target = jnp.maximum(target, 0.0)
        return jax.lax.stop_gradient(target)

    def target_value(self, state: SACState, obs: jax.Array, rng: jax.Array) -> jax.Array:
        """min_i Q'_i(s, a), a ~ pi(.|s), with the target critics and no entropy term
        (MOBILE's next-state value for its Bellman-inconsistency penalty)."""
        action, _ = self.sample(state.actor.params, obs, rng)
        return self.q(state.critic_target, obs, action).min(0)

    def extra_critic_terms(self, critic_params, state, batch, q, rng, terms, weights):
        """Subclasses add regularizers here; returns (terms, weights, metrics, aux)."""
        return terms, weights, {}, None

    def critic_loss(self, critic_params, state: SACState, batch: Batch, rng, hooks: Hooks):
        k_next, k_extra = jax.random.split(rng)
        target = self.td_target(state, batch, k_next)
        q = self.q(critic_params, batch.obs, batch.action)
        terms, weights = {"td": jnp.sum((q - target) ** 2, axis=0)}, {"td": 1.0}
        terms, weights, extra_metrics, aux = self.extra_critic_terms(
            critic_params, state, batch, q, k_extra, terms, weights
        )
        terms, weights = hooks.critic(batch, terms, weights)
        loss, metrics = objective(terms, weights, "critic")
        metrics.update({"critic/q": q.mean(), "critic/target": target.mean(), **extra_metrics})
        return loss, (metrics, aux)

    def extra_updates(self, state: SACState, aux: Any) -> tuple[dict, dict]:
        """Subclasses update `state.extra` from the critic's aux output (CQL's dual)."""
        return state.extra, {}

    # -- update -------------------------------------------------------------------------
    def update(self, state: SACState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        c = self.config
        k_actor, k_critic = jax.random.split(rng)
        (_, (m_actor, log_pi)), g_actor = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, k_actor, hooks
        )
        (_, (m_critic, aux)), g_critic = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, k_critic, hooks
        )
        critic = state.critic.apply_gradients(grads=g_critic)
        log_alpha = state.log_alpha
        if c.auto_entropy:
            log_alpha = log_alpha.apply_gradients(
                grads=jax.grad(self.alpha_loss)(log_alpha.params, log_pi)
            )
        extra, m_extra = self.extra_updates(state, aux)
        step = state.step + 1
        target = jax.lax.cond(
            step % c.target_update_period == 0,
            lambda: polyak(state.critic_target, critic.params, c.tau),
            lambda: state.critic_target,
        )
        new = state.replace(
            actor=state.actor.apply_gradients(grads=g_actor),
            critic=critic,
            log_alpha=log_alpha,
            critic_target=target,
            step=step,
            extra=extra,
        )
        return new, {**m_actor, **m_critic, **m_extra}


# MOREC's MOBILE runs (polixir/morec): MOBILE's SAC with deterministic_backup=False (the
# entropy term stays in the TD target), target still clamped at 0, and the fork's actor loss
# on the target critics
SAC.PRESETS["morec-mobile"] = replace(
    SAC.PRESETS["mobile"], backup_entropy=True, actor_on_target_critics=True
)
