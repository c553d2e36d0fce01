"""CQL: Conservative Q-Learning for Offline RL (Kumar et al., 2020), SAC-based, CORL defaults.

SAC (`sac.py`) plus a conservative critic term:
    gap_i(s) = T logsumexp_j(Q_i(s, a_j) / T - log mu(a_j|s)) - Q_i(s, a)     (importance-sampled:
               a_j from Uniform, pi(.|s) and pi(.|s'), n actions each)
    L_Q = sum_i (Q_i(s, a) - y)^2 + w * sum_i gap_i(s)
    w = cql_alpha, or cql_alpha * alpha' with the Lagrange dual
        L_alpha' = -alpha' cql_alpha (gap - target_action_gap)
CORL's offline settings: no entropy in the backup, policy lr 3e-5, 3x256 orthogonal nets.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from shiftrl.core.jax_utils import adam_state
from shiftrl.core.types import Batch
from shiftrl.learners.sac import SAC, SACConfig, SACState
from shiftrl.nets import TanhGaussianActor


@dataclass(frozen=True)
class CQLConfig(SACConfig):
    normalize_states: bool = True
    """Standardise observations with the training data's mean/std (eps 1e-3)."""
    policy_lr: float = 3e-5
    """Adam learning rate of the policy and the entropy temperature (CORL)."""
    backup_entropy: bool = False
    """Subtract alpha * log pi(a'|s') in the TD target (off in CQL's offline setting)."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """CORL uses 3 hidden layers for both policy and Q networks."""
    orthogonal_init: bool = True
    """Orthogonal init (gain sqrt 2 hidden, 1e-2 output), as CORL."""
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


class CQL(SAC):
    name = "cql"
    Config = CQLConfig
    description = "conservative Q-learning on SAC (fixed-alpha or Lagrange)"
    paper = "Kumar, Zhou, Tucker & Levine, NeurIPS 2020"
    PRESETS = {
        "default": CQLConfig(),
        # A starting point for the dual variant: the gap threshold is task-dependent.
        "lagrange": CQLConfig(cql_lagrange=True, cql_target_action_gap=5.0, cql_alpha=5.0),
        # SSAR's backbone: LayerNorm Q-networks; beta(s) comes from the `ssar` add-on
        "ssar": CQLConfig(critic_layer_norm=True),
        "antmaze": CQLConfig(
            cql_lagrange=True,
            cql_target_action_gap=0.8,
            cql_alpha=5.0,
            reward_scale=10.0,
            reward_bias=-5.0,
            policy_lr=1e-4,
        ),
    }

    def init_extra(self) -> dict:
        return {"log_alpha_prime": adam_state({"value": jnp.ones(())}, self.config.qf_lr)}

    def policy_q_term(self, actor_params, state: SACState, batch: Batch, q_pi):
        # During the BC warm-up the Q term is replaced by log pi(a_data|s) (same sign).
        if self.config.bc_steps <= 0:  # no warm-up (locomotion): skip the likelihood pass
            return q_pi
        bc_log_prob = self.actor_net.apply(
            {"params": actor_params}, batch.obs, batch.action, method=TanhGaussianActor.log_prob
        )
        return jnp.where(state.step < self.config.bc_steps, bc_log_prob, q_pi)

    def conservative_gap(self, critic_params, state: SACState, batch: Batch, q_data, rng):
        """Per-sample CQL(H) gap [n_critics, B]: soft-max of Q over sampled actions minus Q(s, a)."""
        c, (B, A), n = self.config, batch.action.shape, self.config.cql_n_actions
        k_rand, k_cur, k_next = jax.random.split(rng, 3)
        obs_n, next_obs_n = jnp.repeat(batch.obs, n, axis=0), jnp.repeat(batch.next_obs, n, axis=0)
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
            parts = [
                q_rand - rand_density,
                q_next - next_logp.reshape(B, n),
                q_cur - cur_logp.reshape(B, n),
            ]
        else:
            parts = [q_rand, q_data[..., None], q_next, q_cur]
        ood = jax.nn.logsumexp(jnp.concatenate(parts, axis=-1) / c.cql_temp, axis=-1) * c.cql_temp
        return jnp.clip(ood - q_data, c.cql_clip_diff_min, c.cql_clip_diff_max)

    def alpha_prime(self, log_alpha_prime) -> jax.Array:
        return jnp.clip(jnp.exp(log_alpha_prime["value"]), 0.0, 1e6)

    def extra_critic_terms(self, critic_params, state: SACState, batch, q, rng, terms, weights):
        c = self.config
        gap = self.conservative_gap(critic_params, state, batch, q, rng)
        if c.cql_lagrange:
            alpha_prime = jax.lax.stop_gradient(
                self.alpha_prime(state.extra["log_alpha_prime"].params)
            )
            terms["cql"], weights["cql"] = (
                jnp.sum(gap - c.cql_target_action_gap, axis=0),
                alpha_prime * c.cql_alpha,
            )
        else:
            terms["cql"], weights["cql"] = jnp.sum(gap, axis=0), c.cql_alpha
        # the dual step gets the gap as data, so it uses the same sampled actions
        return terms, weights, {"critic/gap": gap.mean()}, jax.lax.stop_gradient(gap)

    def alpha_prime_loss(self, log_alpha_prime, gap):
        c = self.config
        # maximise alpha' * (gap - target): minimise the negative, averaged over both critics
        return -0.5 * jnp.sum(
            self.alpha_prime(log_alpha_prime)
            * c.cql_alpha
            * (gap.mean(axis=1) - c.cql_target_action_gap)
        )

    def extra_updates(self, state: SACState, gap) -> tuple[dict, dict]:
        if not self.config.cql_lagrange:
            return state.extra, {}
        dual = state.extra["log_alpha_prime"]
        loss, grads = jax.value_and_grad(self.alpha_prime_loss)(dual.params, gap)
        return {"log_alpha_prime": dual.apply_gradients(grads=grads)}, {
            "critic/alpha_prime_loss": loss
        }
