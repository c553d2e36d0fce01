"""MAPLE: Offline Model-based Adaptable Policy Learning (Chen et al., NeurIPS 2021).

A SAC whose policy and critics see a context z inferred from the recent transitions, so
one policy adapts to whichever dynamics it meets (a model of the ensemble in training, the
real system at evaluation). Two recurrent context encoders (`nets.context`: GRU 128 over
(s_t, a_{t-1}) -> Dense 16 + tanh), trained as the PyTorch MAPLE (polixir/OfflineRL
`maple.py`, the base of SRPO's released code) trains them:

    z^pi_t = phi_pi(s_{<=t}, a_{<t})  trained through the actor loss
    z^Q_t  = phi_Q(s_{<=t}, a_{<t})   trained through the critic loss

    critic: y = r + gamma (1 - d) (min_i Q'_i(z^Q'_{t+1}, s', a') - alpha log pi(a'|z^pi_{t+1}, s')),
              a' ~ pi(.|z^pi_{t+1}, s'),  y clipped to [r_min, r_max] / (1 - gamma)
            L_Q = sum_i (Q_i(z^Q_t, s, a) - y)^2, averaged over the valid steps
    actor:  L_pi = E[alpha log pi(a~|z^pi_t, s) - min_i Q_i(sg(z^Q_t), s, a~)]
    alpha:  L_alpha = -E[log_alpha (log pi + target_entropy)]

It trains on segment batches (`core.types`: B segments of H steps, each with the encoders'
recurrent states at its first step), which the `maple-model` add-on draws from the real
data and from its model rollouts (`addons/maple.py`). z_{t+1} comes from one more encoder
step on (s_{t+1}, a_t). The target critics keep target copies of the critic's Dense(16)
embedding and Q heads, the GRU is the current one (as the reference's target Maple_critic
copies). On a plain transition batch each row is a length-1 segment from a fresh episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from shiftrl.core.jax_utils import adam_state, copy_params, polyak
from shiftrl.core.types import (
    SEGMENT_HIDDEN_POLICY,
    SEGMENT_HIDDEN_VALUE,
    SEGMENT_PREV_ACTION,
    SEGMENT_REWARD_RANGE,
    SEGMENT_VALID,
    Batch,
)
from shiftrl.learners.base import NO_HOOKS, Hooks, Learner, RecurrentActing, objective
from shiftrl.learners.sac import SACConfig
from shiftrl.nets import CriticEnsemble, TanhGaussianActor
from shiftrl.nets.context import EMBEDDING, HIDDEN, ContextEncoder, encode_sequence


@dataclass(frozen=True)
class MAPLEConfig(SACConfig):
    context_units: int = HIDDEN
    """GRU units of each context encoder (MAPLE's `lstm_hidden_unit`, 128)."""
    context_embedding: int = EMBEDDING
    """Size of the context z (MAPLE's `embedding_size`, 16)."""
    clip_target: bool = True
    """Clip the TD target to [r_min, r_max] / (1 - gamma) of the data's rewards (MAPLE),
    where the segment batch carries the range."""


class MAPLEState(struct.PyTreeNode):
    actor: TrainState
    """{"encoder": policy context encoder, "pi": policy head}"""
    critic: TrainState
    """{"encoder": value context encoder, "q": the Q ensemble}"""
    log_alpha: TrainState
    critic_target: dict
    """{"embed": target copy of the value encoder's Dense(16), "q": target Q heads}"""
    step: jax.Array


class Segments(struct.PyTreeNode):
    """A segment batch as time-major [H, B, ...] arrays."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminal: jax.Array
    prev_action: jax.Array
    valid: jax.Array
    hidden_policy: jax.Array  # [B, hidden]
    hidden_value: jax.Array
    reward_range: jax.Array | None  # [B, 2]


def _time_major(x: jax.Array, b: int, h: int) -> jax.Array:
    return jnp.swapaxes(x.reshape(b, h, *x.shape[1:]), 0, 1)


def _rows(x: jax.Array) -> jax.Array:
    """[H, B, ...] -> [B * H, ...] in the batch's segment-major row order."""
    return jnp.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:])


class MAPLE(RecurrentActing, Learner):
    name = "maple"
    Config = MAPLEConfig
    description = "context-conditioned SAC (GRU context encoders) on model rollouts (MAPLE)"
    paper = "Chen, Yu, Li, Luo, Qin, Shang & Ye, NeurIPS 2021"
    PRESETS = {
        # PyTorch MAPLE (polixir/OfflineRL maple_config.py): lr 3e-4 for policy (with its
        # GRU), critics (with theirs) and alpha; target entropy -|A|; tau 5e-3
        "default": MAPLEConfig(),
        "tiny": MAPLEConfig(hidden=(32, 32), context_units=16, context_embedding=4),
    }

    def __init__(self, config: MAPLEConfig, spec):
        super().__init__(config, spec)
        self.encoder = ContextEncoder(config.context_units, config.context_embedding)
        self.embed = nn.Dense(config.context_embedding)  # the encoder's own "embed" layer
        self.actor_net = TanhGaussianActor(spec.act_dim, config.hidden, config.orthogonal_init)
        self.critic_net = CriticEnsemble(
            2, config.hidden, config.orthogonal_init, 1e-2, config.critic_layer_norm
        )
        self.target_entropy = -float(spec.act_dim)

    def init(self, rng: jax.Array) -> MAPLEState:
        c = self.config
        k_pe, k_ve, k_a, k_q, k_s = jax.random.split(rng, 5)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        carry = self.encoder.initial_carry((1,))
        reset = jnp.zeros((1,), bool)
        ctx_obs = jnp.zeros((1, self.spec.obs_dim + c.context_embedding))
        actor = {
            "encoder": self.encoder.init(k_pe, carry, obs, act, reset)["params"],
            "pi": self.actor_net.init(k_a, ctx_obs, k_s)["params"],
        }
        critic = {
            "encoder": self.encoder.init(k_ve, carry, obs, act, reset)["params"],
            "q": self.critic_net.init(k_q, ctx_obs, act)["params"],
        }
        return MAPLEState(
            actor=adam_state(actor, c.policy_lr),
            critic=adam_state(critic, c.qf_lr),
            log_alpha=adam_state({"value": jnp.zeros(())}, c.policy_lr),
            critic_target=copy_params({"embed": critic["encoder"]["embed"], "q": critic["q"]}),
            step=jnp.zeros((), jnp.int32),
        )

    # -- segments -------------------------------------------------------------------------
    def segments(self, batch: Batch) -> Segments:
        """The batch as time-major segments; a plain transition batch as length-1 segments
        of fresh episodes (zero recurrent state, zero previous action)."""
        n = batch.size
        b = batch.segments or n
        h = n // b
        ex = batch.extras
        zeros = jnp.zeros((b, self.config.context_units))
        return Segments(
            obs=_time_major(batch.obs, b, h),
            action=_time_major(batch.action, b, h),
            reward=_time_major(batch.reward, b, h),
            next_obs=_time_major(batch.next_obs, b, h),
            terminal=_time_major(batch.terminal, b, h),
            prev_action=_time_major(
                ex.get(SEGMENT_PREV_ACTION, jnp.zeros_like(batch.action)), b, h
            ),
            valid=_time_major(ex.get(SEGMENT_VALID, jnp.ones(n)), b, h),
            hidden_policy=ex.get(SEGMENT_HIDDEN_POLICY, zeros),
            hidden_value=ex.get(SEGMENT_HIDDEN_VALUE, zeros),
            reward_range=ex.get(SEGMENT_REWARD_RANGE),
        )

    def contexts(self, enc_params, seg: Segments, hidden: jax.Array):
        """The encoder over the segment and one step beyond: (z_t [H, B, E], z_{t+1},
        carries after each of the H + 1 steps [H + 1, B, hidden])."""
        obs = jnp.concatenate([seg.obs, seg.next_obs[-1:]], 0)
        prev = jnp.concatenate([seg.prev_action, seg.action[-1:]], 0)
        reset = jnp.zeros(obs.shape[:2], bool)  # segments never cross an episode start
        _, carries, z = encode_sequence(
            self.encoder, {"params": enc_params}, hidden, obs, prev, reset
        )
        return z[:-1], z[1:], carries

    # -- networks ---------------------------------------------------------------------
    def sample(self, pi_params, z, obs, rng):
        return self.actor_net.apply({"params": pi_params}, jnp.concatenate([z, obs], -1), rng)

    def q(self, q_params, z, obs, action):
        return self.critic_net.apply({"params": q_params}, jnp.concatenate([z, obs], -1), action)

    def alpha(self, state: MAPLEState) -> jax.Array:
        return jnp.exp(state.log_alpha.params["value"]) * self.config.alpha_multiplier

    @staticmethod
    def _mask_weight(valid: jax.Array) -> jax.Array:
        """Row weights whose `mean(w * term)` is the mean of the term over valid rows."""
        return valid / jnp.maximum(valid.mean(), 1e-6)

    # -- losses -----------------------------------------------------------------------
    def td_target(self, state: MAPLEState, seg: Segments, zp_next, carries_v, rng) -> jax.Array:
        """y per step [H, B]; z^pi_{t+1} and the value encoder's states come from the current
        encoders (no gradient), the embedding of the latter from its target copy."""
        c = self.config
        target = state.critic_target
        zv_next = jnp.tanh(self.embed.apply({"params": target["embed"]}, carries_v[1:]))
        next_a, next_logp = self.sample(state.actor.params["pi"], zp_next, seg.next_obs, rng)
        target_q = self.q(target["q"], zv_next, seg.next_obs, next_a).min(0)
        if c.backup_entropy:
            target_q = target_q - self.alpha(state) * next_logp
        y = seg.reward + c.discount * (1.0 - seg.terminal) * target_q
        if c.clip_target and seg.reward_range is not None:
            low, high = seg.reward_range[:, 0], seg.reward_range[:, 1]  # [B]
            y = jnp.clip(y, low / (1 - c.discount), high / (1 - c.discount))
        return jax.lax.stop_gradient(y)

    def critic_loss(self, critic_params, state, seg: Segments, batch, zp_next, rng, hooks):
        zv, _, carries = self.contexts(critic_params["encoder"], seg, seg.hidden_value)
        y = _rows(self.td_target(state, seg, zp_next, jax.lax.stop_gradient(carries), rng))
        q = self.q(critic_params["q"], _rows(zv), batch.obs, batch.action)  # [2, N]
        terms = {"td": jnp.sum((q - y) ** 2, axis=0)}
        terms, weights = hooks.critic(batch, terms, {"td": self._mask_weight(_rows(seg.valid))})
        loss, metrics = objective(terms, weights, "critic")
        metrics = {**metrics, "critic/q": q.mean(), "critic/target": y.mean()}
        return loss, (metrics, jax.lax.stop_gradient(zv))

    def actor_loss(self, actor_params, state, seg: Segments, batch, zv, rng, hooks):
        """zv: the value context, held fixed (the reference's value_state.detach())."""
        alpha = jax.lax.stop_gradient(self.alpha(state))
        zp, _, _ = self.contexts(actor_params["encoder"], seg, seg.hidden_policy)
        pi, log_pi = self.sample(actor_params["pi"], _rows(zp), batch.obs, rng)
        q_pi = self.q(state.critic.params["q"], _rows(zv), batch.obs, pi)
        mask = self._mask_weight(_rows(seg.valid))
        terms = {"entropy": log_pi, "q": q_pi.min(0), "pi_action": pi, "log_prob": log_pi}
        terms, weights = hooks.actor(batch, terms, {"entropy": alpha * mask, "q": -mask})
        loss, metrics = objective(terms, weights, "actor")
        metrics = {**metrics, "actor/alpha": alpha, "actor/log_pi": log_pi.mean()}
        return loss, (metrics, jax.lax.stop_gradient(log_pi), mask)

    def alpha_loss(self, log_alpha, log_pi, mask):
        gap = jax.lax.stop_gradient(log_pi + self.target_entropy)
        return -jnp.mean(mask * log_alpha["value"] * gap)

    # -- update -------------------------------------------------------------------------
    def update(self, state: MAPLEState, batch: Batch, rng, hooks: Hooks = NO_HOOKS):
        c = self.config
        seg = self.segments(batch)
        k_actor, k_critic = jax.random.split(rng)
        # z^pi_{t+1} for the TD target, from the pre-update policy encoder
        _, zp_next, _ = self.contexts(state.actor.params["encoder"], seg, seg.hidden_policy)
        zp_next = jax.lax.stop_gradient(zp_next)
        (_, (m_critic, zv)), g_critic = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state.critic.params, state, seg, batch, zp_next, k_critic, hooks
        )
        (_, (m_actor, log_pi, mask)), g_actor = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state.actor.params, state, seg, batch, zv, k_actor, hooks
        )
        critic = state.critic.apply_gradients(grads=g_critic)
        log_alpha = state.log_alpha
        if c.auto_entropy:
            log_alpha = log_alpha.apply_gradients(
                grads=jax.grad(self.alpha_loss)(log_alpha.params, log_pi, mask)
            )
        step = state.step + 1
        online = {"embed": critic.params["encoder"]["embed"], "q": critic.params["q"]}
        target = jax.lax.cond(
            step % c.target_update_period == 0,
            lambda: polyak(state.critic_target, online, c.tau),
            lambda: state.critic_target,
        )
        new = state.replace(
            actor=state.actor.apply_gradients(grads=g_actor),
            critic=critic,
            log_alpha=log_alpha,
            critic_target=target,
            step=step,
        )
        return new, {**m_actor, **m_critic, "batch/valid": seg.valid.mean()}

    # -- values -------------------------------------------------------------------------
    def batch_value(self, state: MAPLEState, batch: Batch) -> jax.Array:
        """min_i Q_i(z^Q_t, s_t, pi(z^pi_t, s_t)) with each row's context from its segment."""
        seg = self.segments(batch)
        zp, _, _ = self.contexts(state.actor.params["encoder"], seg, seg.hidden_policy)
        zv, _, _ = self.contexts(state.critic.params["encoder"], seg, seg.hidden_value)
        mean, _ = self.actor_net.apply(
            {"params": state.actor.params["pi"]},
            jnp.concatenate([_rows(zp), batch.obs], -1),
            method=TanhGaussianActor.dist,
        )
        return self.q(state.critic.params["q"], _rows(zv), batch.obs, jnp.tanh(mean)).min(0)

    def value(self, state: MAPLEState, obs: jax.Array) -> jax.Array:
        """The value at the first step of an episode (no history: zero recurrent states)."""
        n = obs.shape[0]
        rows = Batch(
            obs=obs,
            action=jnp.zeros((n, self.spec.act_dim)),
            reward=jnp.zeros(n),
            next_obs=obs,
            terminal=jnp.zeros(n),
            domain=jnp.zeros(n, jnp.int32),
        )
        return self.batch_value(state, rows)  # length-1 segments from zero states

    # -- acting -------------------------------------------------------------------------
    def initial_carry(self, n: int) -> dict:
        """Both encoders' recurrent states for n episodes (zeros)."""
        zeros = self.encoder.initial_carry((n,))
        return {"policy": zeros, "value": zeros}

    def context_step(self, state: MAPLEState, carry: dict, obs, prev_action, reset):
        """Both encoders one step on (s_t, a_{t-1}): (new carry, z^pi_t). The value encoder
        steps too, so its state can be stored with a segment."""
        h_p, z_p = self.encoder.apply(
            {"params": state.actor.params["encoder"]}, carry["policy"], obs, prev_action, reset
        )
        h_v, _ = self.encoder.apply(
            {"params": state.critic.params["encoder"]}, carry["value"], obs, prev_action, reset
        )
        return {"policy": h_p, "value": h_v}, z_p

    def act_step(self, state: MAPLEState, carry: dict, obs, prev_action, reset):
        carry, z = self.context_step(state, carry, obs, prev_action, reset)
        action = self.actor_net.apply(
            {"params": state.actor.params["pi"]},
            jnp.concatenate([z, obs], -1),
            method=TanhGaussianActor.deterministic,
        )
        return carry, action

    def explore_step(self, state: MAPLEState, carry: dict, obs, prev_action, reset, rng):
        carry, z = self.context_step(state, carry, obs, prev_action, reset)
        return carry, self.sample(state.actor.params["pi"], z, obs, rng)[0]
