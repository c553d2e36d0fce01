"""Context SAC: SAC whose policy and critics see a context z inferred by a recurrent encoder.

The online context-based learner of SRPO's online setting (a HiP-MDP whose dynamics are
drawn per episode; SRPO runs its add-on on CaDM / PEARL-style context learners there, whose
code is not public). It is MAPLE's adaptable policy without the dynamics models
(`nets/context.py`): two GRU encoders over (s_t, a_{t-1}), reset at every episode start,
one trained through the policy loss and one through the critic loss (MAPLE's `lstm_net_p`
and `lstm_net_v`), each giving a 16-d context that is concatenated to the state:

    z^pi_t = phi_pi(s_<=t, a_<t),   z^Q_t = phi_Q(s_<=t, a_<t)
    actor:   L_pi = E[ alpha log pi(a~|s, z^pi) - min_i Q_i(s, z^Q, a~) ],   z^Q without gradient
    critic:  y = r + gamma (1 - d) (min_i Q'_i(s', z'^Q', a') - alpha log pi(a'|s', z'^pi)),
             L_Q = sum_i (Q_i(s, z^Q, a) - y)^2
z' is one more encoder step on (s', a_t) from the carry after step t (MAPLE's next-state
embedding); the target critics carry their own copy of the value encoder (Polyak-averaged
with them). Apart from the context this is `SAC`: same losses, same update, same presets.

Training samples are windows, not lone transitions: `batch.extras` holds, for each sampled
transition t, the K = `window` steps before it (obs s_{t-K+1..t}, previous actions,
episode-start flags) and the encoders' hidden states stored when the env was stepped, at
the window's first step. Each loss re-encodes the window from those stored states with the
current parameters (R2D2's stored state + burn-in; see `training/online_context.py` for
why), and the context of step t is the last. Keys:

    context/obs [B, K, d]   context/prev_action [B, K, a]   context/reset [B, K]
    context/carry_pi [B, H] context/carry_q [B, H]

Acting is recurrent: `act_step` / `explore_step` take and return the encoders' carry.
`act(state, obs)` and `value(state, obs)` (the base contract) use the context of an
episode's first step, when nothing has been seen yet; `batch_value` uses the transition's
own context window (what SRPO ranks states by).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from shiftrl.core.jax_utils import adam_state, copy_params
from shiftrl.core.types import Batch
from shiftrl.learners.base import Hooks, RecurrentActing, objective
from shiftrl.learners.sac import SAC, SACConfig, SACState
from shiftrl.nets import TanhGaussianActor
from shiftrl.nets.context import EMBEDDING, HIDDEN, ContextEncoder, encode_sequence

CONTEXT_KEYS = ("obs", "prev_action", "reset", "carry_pi", "carry_q")


@dataclass(frozen=True)
class ContextSACConfig(SACConfig):
    context_hidden: int = HIDDEN
    """GRU units of each context encoder (MAPLE: 128)."""
    context_embedding: int = EMBEDDING
    """Size of the context z (MAPLE: 16)."""
    window: int = 8
    """Steps re-encoded before each sampled transition, from the hidden state stored when
    the env was stepped (burn-in); the context of the transition is the window's last."""


class ContextSAC(RecurrentActing, SAC):
    name = "sac-context"
    Config = ContextSACConfig
    description = "SAC with recurrent context encoders (MAPLE's GRU), online"
    paper = "Haarnoja et al. 2018 + MAPLE's context encoder (Chen et al., NeurIPS 2021)"
    PRESETS = {
        "default": ContextSACConfig(),
        "small": ContextSACConfig(hidden=(64, 64), context_hidden=32),
    }

    def __init__(self, config: ContextSACConfig, spec):
        super().__init__(config, spec)
        self.encoder = ContextEncoder(config.context_hidden, config.context_embedding)

    def init(self, rng: jax.Array) -> SACState:
        c = self.config
        k_a, k_q, k_s, k_ep, k_eq = jax.random.split(rng, 5)
        obs = jnp.zeros((1, self.spec.obs_dim))
        act = jnp.zeros((1, self.spec.act_dim))
        obs_z = jnp.zeros((1, self.spec.obs_dim + c.context_embedding))
        carry, reset = self.encoder.initial_carry((1,)), jnp.ones((1,), bool)
        actor = {
            "encoder": self.encoder.init(k_ep, carry, obs, act, reset),
            "policy": self.actor_net.init(k_a, obs_z, k_s)["params"],
        }
        critic = {
            "encoder": self.encoder.init(k_eq, carry, obs, act, reset),
            "critics": self.critic_net.init(k_q, obs_z, act)["params"],
        }
        return SACState(
            actor=adam_state(actor, self.actor_lr()),
            critic=adam_state(critic, c.qf_lr),
            log_alpha=adam_state({"value": jnp.zeros(())}, c.policy_lr),
            critic_target=copy_params(critic),
            step=jnp.zeros((), jnp.int32),
            extra=self.init_extra(),
        )

    # -- contexts -------------------------------------------------------------------------
    def contexts(self, encoder_params, batch: Batch, carry_key: str):
        """(z_t, z_{t+1}) [B, E] of each sampled transition: the window re-encoded from its
        stored carry, then one more step on (s', a_t)."""
        ex = batch.extras
        time_major = [jnp.swapaxes(ex[f"context/{k}"], 0, 1) for k in CONTEXT_KEYS[:3]]
        carry, _, z = encode_sequence(
            self.encoder, encoder_params, ex[f"context/{carry_key}"], *time_major
        )
        no_reset = jnp.zeros(batch.reward.shape, bool)
        _, z_next = self.encoder.apply(
            encoder_params, carry, batch.next_obs, batch.action, no_reset
        )
        return z[-1], z_next

    def sample_with(self, actor_params, obs, z, rng):
        return self.actor_net.apply(
            {"params": actor_params["policy"]}, jnp.concatenate([obs, z], -1), rng
        )

    def q_with(self, critic_params, obs, z, action):
        return self.critic_net.apply(
            {"params": critic_params["critics"]}, jnp.concatenate([obs, z], -1), action
        )

    # -- acting (recurrent) ---------------------------------------------------------------
    def initial_carry(self, n: int) -> dict[str, jax.Array]:
        """Both encoders' hidden states for `n` parallel episodes (zeros)."""
        zeros = self.encoder.initial_carry((n,))
        return {"pi": zeros, "q": zeros}

    def step_context(self, state: SACState, carry: dict, obs, prev_action, reset):
        """One encoder step for acting: (new carry, z^pi). The value encoder steps too, so
        its hidden state can be stored with the transition (training burns in from it)."""
        c_pi, z_pi = self.encoder.apply(
            state.actor.params["encoder"], carry["pi"], obs, prev_action, reset
        )
        c_q, _ = self.encoder.apply(
            state.critic.params["encoder"], carry["q"], obs, prev_action, reset
        )
        return {"pi": c_pi, "q": c_q}, z_pi

    def act_step(self, state: SACState, carry: dict, obs, prev_action, reset):
        """(carry, deterministic action) in an episode; `reset` marks episode starts."""
        carry, z = self.step_context(state, carry, obs, prev_action, reset)
        action = self.actor_net.apply(
            {"params": state.actor.params["policy"]},
            jnp.concatenate([obs, z], -1),
            method=TanhGaussianActor.deterministic,
        )
        return carry, action

    def explore_step(self, state: SACState, carry: dict, obs, prev_action, reset, rng):
        """(carry, sampled action) for collecting data online."""
        carry, z = self.step_context(state, carry, obs, prev_action, reset)
        return carry, self.sample_with(state.actor.params, obs, z, rng)[0]

    def value(self, state: SACState, obs: jax.Array) -> jax.Array:
        """min_i Q_i(s, z, pi(s, z)) with the context of an episode's first step."""
        carry, prev, reset = self.first_step(obs)
        _, z_q = self.encoder.apply(state.critic.params["encoder"], carry["q"], obs, prev, reset)
        action = self.act(state, obs)
        return self.q_with(state.critic.params, obs, z_q, action).min(0)

    def batch_value(self, state: SACState, batch: Batch) -> jax.Array:
        """min_i Q_i(s, z^Q, pi(s, z^pi)) with each transition's own context (SRPO's ranking;
        not the released code's mismatched context, algorithms.md 1.3)."""
        z_pi, _ = self.contexts(state.actor.params["encoder"], batch, "carry_pi")
        z_q, _ = self.contexts(state.critic.params["encoder"], batch, "carry_q")
        action = self.actor_net.apply(
            {"params": state.actor.params["policy"]},
            jnp.concatenate([batch.obs, z_pi], -1),
            method=TanhGaussianActor.deterministic,
        )
        return self.q_with(state.critic.params, batch.obs, z_q, action).min(0)

    # -- losses (SAC's, with the contexts) ------------------------------------------------
    def actor_loss(self, actor_params, state: SACState, batch: Batch, rng, hooks: Hooks):
        alpha = jax.lax.stop_gradient(self.alpha(state))
        z_pi, _ = self.contexts(actor_params["encoder"], batch, "carry_pi")
        z_q, _ = self.contexts(state.critic.params["encoder"], batch, "carry_q")
        z_q = jax.lax.stop_gradient(z_q)  # MAPLE: the actor loss uses value_state.detach()
        pi, log_pi = self.sample_with(actor_params, batch.obs, z_pi, rng)
        q_pi = self.q_with(state.critic.params, batch.obs, z_q, pi).min(0)
        terms = {"entropy": log_pi, "q": q_pi, "pi_action": pi, "log_prob": log_pi}
        terms, weights = hooks.actor(batch, terms, {"entropy": alpha, "q": -1.0})
        loss, metrics = objective(terms, weights, "actor")
        metrics = {**metrics, "actor/alpha": alpha, "actor/log_pi": log_pi.mean()}
        return loss, (metrics, jax.lax.stop_gradient(log_pi))

    def td_target(self, state: SACState, batch: Batch, rng) -> jax.Array:
        _, z_pi_next = self.contexts(state.actor.params["encoder"], batch, "carry_pi")
        _, z_q_next = self.contexts(state.critic_target["encoder"], batch, "carry_q")
        next_a, next_logp = self.sample_with(state.actor.params, batch.next_obs, z_pi_next, rng)
        target_q = self.q_with(state.critic_target, batch.next_obs, z_q_next, next_a).min(0)
        return self.soft_backup(state, batch, target_q, next_logp)

    def critic_loss(self, critic_params, state: SACState, batch: Batch, rng, hooks: Hooks):
        target = self.td_target(state, batch, rng)
        z_q, _ = self.contexts(critic_params["encoder"], batch, "carry_q")
        q = self.q_with(critic_params, batch.obs, z_q, batch.action)
        terms, weights = {"td": jnp.sum((q - target) ** 2, axis=0)}, {"td": 1.0}
        terms, weights = hooks.critic(batch, terms, weights)
        loss, metrics = objective(terms, weights, "critic")
        metrics.update({"critic/q": q.mean(), "critic/target": target.mean()})
        return loss, (metrics, None)
