"""CQL: Conservative Q-Learning for Offline RL (Kumar et al., 2020), SAC-based, CORL defaults.

    actor:   L_pi = E[ alpha log pi(a~|s) - min_i Q_i(s, a~) ],   a~ ~ pi(.|s)
    entropy: L_alpha = -E[ log_alpha (log pi(a~|s) + target_entropy) ]
    critic:  y = r + gamma (1 - d) min_i Q'_i(s', a'),  a' ~ pi(.|s')
             gap_i(s) = T logsumexp_j(Q_i(s, a_j) / T - log mu(a_j|s)) - Q_i(s, a)   (importance-sampled:
                        a_j from Uniform, pi(.|s) and pi(.|s'), n actions each)
             L_Q = sum_i (Q_i(s, a) - y)^2 + w * sum_i gap_i(s)
             w = cql_alpha, or cql_alpha * alpha' with the Lagrange dual
                 L_alpha' = -alpha' cql_alpha (gap - target_action_gap)
All losses are computed from the same pre-update parameters, as in the reference code.
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
from shiftrl.nets import CriticEnsemble, TanhGaussianActor


@dataclass(frozen=True)
class CQLConfig(CommonConfig):
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 5e-3
    """Soft target update rate."""
    target_update_period: int = 1
    """Soft-update the target critics every k steps."""
    policy_lr: float = 3e-5
    """Adam learning rate of the policy and the entropy temperature."""
    qf_lr: float = 3e-4
    """Adam learning rate of the critics and the Lagrange multiplier."""
    alpha_multiplier: float = 1.0
    """Scales the SAC temperature exp(log_alpha)."""
    auto_entropy: bool = True
    """Tune the SAC temperature towards target entropy -act_dim."""
    backup_entropy: bool = False
    """Subtract alpha * log pi(a'|s') in the TD target (off in CQL's offline setting)."""
    cql_alpha: float = 10.0
    """Weight of the conservative gap (CORL's locomotion value)."""
    cql_n_actions: int = 10
    """Actions sampled per state from each of uniform, pi(.|s), pi(.|s')."""
    cql_importance_sample: bool = True
    """Subtract each sample's log-density inside the logsumexp (CQL(H) with IS)."""
    cql_temp: float = 1.0
    """Temperature of the logsumexp."""
    cql_lagrange: bool = False
    """Tune the conservative weight with a dual variable towards `cql_target_action_gap`."""
    cql_target_action_gap: float = -1.0
    """Target gap for the Lagrange variant (only used when cql_lagrange)."""
    cql_clip_diff_min: float = -float("inf")
    """Lower clip of the per-sample gap."""
    cql_clip_diff_max: float = float("inf")
    """Upper clip of the per-sample gap."""
    bc_steps: int = 0
    """Initial steps where the actor maximises log pi(a|s) instead (AntMaze warm-up)."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """CORL uses 3 hidden layers for both policy and Q networks."""
    orthogonal_init: bool = True
    """Orthogonal init (gain sqrt 2 hidden, 1e-2 output), as CORL."""


class CQLState(struct.PyTreeNode):
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    log_alpha_prime: TrainState
    critic_target: dict
    step: jax.Array


class CQL(Learner):
    name = "cql"
    Config = CQLConfig
    description = "conservative Q-learning on SAC (fixed-alpha or Lagrange)"
    paper = "Kumar, Zhou, Tucker & Levine, NeurIPS 2020"
    PRESETS = {
        "default": CQLConfig(),
        # A starting point for the dual variant: the gap threshold is task-dependent.
        "lagrange": CQLConfig(cql_lagrange=True, cql_target_action_gap=5.0, cql_alpha=5.0),
        "antmaze": CQLConfig(
            cql_lagrange=True,
            cql_target_action_gap=0.8,
            cql_alpha=5.0,
            reward_scale=10.0,
            reward_bias=-5.0,
            policy_lr=1e-4,
        ),
    }

    def __init__(self, config: CQLConfig, spec):
        super().__init__(config, spec)
        self.actor_net = TanhGaussianActor(spec.act_dim, config.hidden, config.orthogonal_init)
        self.critic_net = CriticEnsemble(2, config.hidden, config.orthogonal_init, 1e-2)
        self.target_entropy = -float(spec.act_dim)

    def init(self, rng: jax.Array) -> CQLState:
        c = self.config
        k_a, k_q, k_s = jax.random.split(rng, 3)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        critic_params = self.critic_net.init(k_q, obs, act)["params"]

        def ts(params, lr):
            return TrainState.create(apply_fn=None, params=params, tx=optax.adam(lr))

        return CQLState(
            actor=ts(self.actor_net.init(k_a, obs, k_s)["params"], c.policy_lr),
            critic=ts(critic_params, c.qf_lr),
            log_alpha=ts({"value": jnp.zeros(())}, c.policy_lr),
            log_alpha_prime=ts({"value": jnp.ones(())}, c.qf_lr),
            critic_target=copy_params(critic_params),
            step=jnp.zeros((), jnp.int32),
        )

    # -- networks ---------------------------------------------------------------------
    def sample(self, actor_params, obs, rng):
        return self.actor_net.apply({"params": actor_params}, obs, rng)

    def q(self, params, obs, action):
        return self.critic_net.apply({"params": params}, obs, action)

    def act(self, state: CQLState, obs: jax.Array) -> jax.Array:
        return self.actor_net.apply(
            {"params": state.actor.params}, obs, method=TanhGaussianActor.deterministic
        )

    def value(self, state: CQLState, obs: jax.Array) -> jax.Array:
        return self.q(state.critic.params, obs, self.act(state, obs)).min(0)

    def alpha(self, state: CQLState) -> jax.Array:
        return jnp.exp(state.log_alpha.params["value"]) * self.config.alpha_multiplier

    # -- losses -----------------------------------------------------------------------
    def actor_loss(self, actor_params, state: CQLState, batch: Batch, rng, hooks: Hooks):
        alpha = jax.lax.stop_gradient(self.alpha(state))
        pi, log_pi = self.sample(actor_params, batch.obs, rng)
        q_pi = self.q(state.critic.params, batch.obs, pi).min(0)
        bc_log_prob = self.actor_net.apply(
            {"params": actor_params}, batch.obs, batch.action, method=TanhGaussianActor.log_prob
        )
        # During the BC warm-up the Q term is replaced by log pi(a_data|s) (same sign).
        in_bc_phase = state.step < self.config.bc_steps
        terms = {
            "entropy": log_pi,
            "q": jnp.where(in_bc_phase, bc_log_prob, q_pi),
            "pi_action": pi,
            "log_prob": log_pi,
        }
        weights = {"entropy": alpha, "q": -1.0}
        terms, weights = hooks.actor(batch, terms, weights)
        loss, metrics = objective(terms, weights, "actor")
        metrics = {**metrics, "actor/alpha": alpha, "actor/log_pi": log_pi.mean()}
        return loss, (metrics, jax.lax.stop_gradient(log_pi))

    def alpha_loss(self, log_alpha, log_pi):
        return -jnp.mean(log_alpha["value"] * jax.lax.stop_gradient(log_pi + self.target_entropy))

    def conservative_gap(self, critic_params, state: CQLState, batch: Batch, q_data, rng):
        """Per-sample CQL(H) gap [n_critics, B]: soft-max of Q over sampled actions minus Q(s, a)."""
        c, (B, A), n = self.config, batch.action.shape, self.config.cql_n_actions
        k_rand, k_cur, k_next = jax.random.split(rng, 3)
        rep = lambda x: jnp.repeat(x, n, axis=0)  # noqa: E731  [B*n, ...], sample-major
        obs_n, next_obs_n = rep(batch.obs), rep(batch.next_obs)
        rand_a = jax.random.uniform(k_rand, (B * n, A), minval=-1.0, maxval=1.0)
        cur_a, cur_logp = self.sample(state.actor.params, obs_n, k_cur)
        next_a, next_logp = self.sample(state.actor.params, next_obs_n, k_next)
        cur_a, cur_logp, next_a, next_logp = jax.lax.stop_gradient(
            (cur_a, cur_logp, next_a, next_logp)
        )

        def q_n(a):  # [n_critics, B, n]
            return self.q(critic_params, obs_n, a).reshape(-1, B, n)

        q_rand, q_cur, q_next = q_n(rand_a), q_n(cur_a), q_n(next_a)
        if c.cql_importance_sample:
            rand_density = A * jnp.log(0.5)
            cat = jnp.concatenate(
                [
                    q_rand - rand_density,
                    q_next - next_logp.reshape(B, n),
                    q_cur - cur_logp.reshape(B, n),
                ],
                axis=-1,
            )
        else:
            cat = jnp.concatenate([q_rand, q_data[..., None], q_next, q_cur], axis=-1)
        ood = jax.nn.logsumexp(cat / c.cql_temp, axis=-1) * c.cql_temp
        return jnp.clip(ood - q_data, c.cql_clip_diff_min, c.cql_clip_diff_max)

    def critic_loss(self, critic_params, state: CQLState, batch: Batch, rng, hooks: Hooks):
        c = self.config
        k_next, k_cql = jax.random.split(rng)
        next_a, next_logp = self.sample(state.actor.params, batch.next_obs, k_next)
        target_q = self.q(state.critic_target, batch.next_obs, next_a).min(0)
        if c.backup_entropy:
            target_q = target_q - self.alpha(state) * next_logp
        target = jax.lax.stop_gradient(
            batch.reward + c.discount * (1.0 - batch.terminal) * target_q
        )
        q = self.q(critic_params, batch.obs, batch.action)
        gap = self.conservative_gap(critic_params, state, batch, q, k_cql)

        if c.cql_lagrange:
            alpha_prime = jax.lax.stop_gradient(
                jnp.clip(jnp.exp(state.log_alpha_prime.params["value"]), 0.0, 1e6)
            )
            cql_weight = alpha_prime * c.cql_alpha
            gap_term = jnp.sum(gap - c.cql_target_action_gap, axis=0)
        else:
            cql_weight = c.cql_alpha
            gap_term = jnp.sum(gap, axis=0)
        terms = {"td": jnp.sum((q - target) ** 2, axis=0), "cql": gap_term}
        terms, weights = hooks.critic(batch, terms, {"td": 1.0, "cql": cql_weight})
        loss, metrics = objective(terms, weights, "critic")
        metrics.update(
            {"critic/q": q.mean(), "critic/target": target.mean(), "critic/gap": gap.mean()}
        )
        # the dual gets the gap as data; returned so the Lagrange step uses the same samples
        return loss, (metrics, jax.lax.stop_gradient(gap))

    def alpha_prime_loss(self, log_alpha_prime, gap):
        alpha_prime = jnp.clip(jnp.exp(log_alpha_prime["value"]), 0.0, 1e6)
        c = self.config
        # maximise alpha' * (gap - target): minimise the negative, averaged over both critics
        return -0.5 * jnp.sum(
            alpha_prime * c.cql_alpha * (gap.mean(axis=1) - c.cql_target_action_gap)
        )

    # -- update -------------------------------------------------------------------------
    def update(self, state: CQLState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        c = self.config
        k_actor, k_critic = jax.random.split(rng)
        (_, (m_actor, log_pi)), g_actor = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, batch, k_actor, hooks
        )
        (_, (m_critic, gap)), g_critic = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, batch, k_critic, hooks
        )
        new = {
            "actor": state.actor.apply_gradients(grads=g_actor),
            "critic": state.critic.apply_gradients(grads=g_critic),
        }
        metrics = {**m_actor, **m_critic}
        if c.auto_entropy:
            g_alpha = jax.grad(self.alpha_loss)(state.log_alpha.params, log_pi)
            new["log_alpha"] = state.log_alpha.apply_gradients(grads=g_alpha)
        if c.cql_lagrange:
            a_loss, g_ap = jax.value_and_grad(self.alpha_prime_loss)(
                state.log_alpha_prime.params, gap
            )
            new["log_alpha_prime"] = state.log_alpha_prime.apply_gradients(grads=g_ap)
            metrics["critic/alpha_prime_loss"] = a_loss
        step = state.step + 1
        target = jax.lax.cond(
            step % c.target_update_period == 0,
            lambda: polyak(state.critic_target, new["critic"].params, c.tau),
            lambda: state.critic_target,
        )
        return state.replace(**new, critic_target=target, step=step), metrics
