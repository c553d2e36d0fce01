"""The recurrent context encoder of context-based learners (MAPLE; online context SAC).

MAPLE's environment-parameter extractor (Chen et al., NeurIPS 2021; polixir/OfflineRL
`utils/net/model_GRU.py`, the base of SRPO's released code): a GRU with 128 units over
(s_t, a_{t-1}) (a_{-1} = 0), its hidden state reset at every episode start, followed by
Dense(16) + tanh. The 16-d embedding z_t is concatenated to the state by the policy and the
critics, so they can act on dynamics they infer from the recent transitions.

    carry_t = GRU(carry_{t-1} if not reset_t else 0, [s_t, a_{t-1}])
    z_t     = tanh(W carry_t + b)

`ContextEncoder.__call__` is one step (for acting in an environment or a model rollout);
`encode_sequence` runs it over a [T, B, ...] batch of segments with `lax.scan` (training on
stored segments). A learner usually holds two encoders, one trained through the policy loss
and one through the critic loss, as MAPLE does.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

HIDDEN = 128
"""GRU units (MAPLE's `lstm_hidden_unit`)."""
EMBEDDING = 16
"""Size of the context z fed to the policy / critics (MAPLE's `embedding_size`)."""


class ContextEncoder(nn.Module):
    """One GRU step over (s_t, a_{t-1}), reset where `reset` is true; returns (carry, z)."""

    hidden: int = HIDDEN
    embedding: int = EMBEDDING

    @nn.compact
    def __call__(
        self, carry: jax.Array, obs: jax.Array, prev_action: jax.Array, reset: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        # an episode start forgets the previous episode's dynamics estimate
        carry = jnp.where(reset[..., None], jnp.zeros_like(carry), carry)
        carry, out = nn.GRUCell(self.hidden, name="gru")(
            carry, jnp.concatenate([obs, prev_action], axis=-1)
        )
        return carry, jnp.tanh(nn.Dense(self.embedding, name="embed")(out))

    def initial_carry(self, batch_shape: tuple[int, ...]) -> jax.Array:
        return jnp.zeros((*batch_shape, self.hidden), jnp.float32)


def encode_sequence(
    encoder: ContextEncoder,
    params,
    carry: jax.Array,
    obs: jax.Array,
    prev_action: jax.Array,
    reset: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Run `encoder` over time-major segments: obs [T, B, d], prev_action [T, B, a], reset
    [T, B] from carry [B, H]. Returns (final carry [B, H], carries [T, B, H], z [T, B, E]);
    carries[t] is the hidden state after step t (what a rollout or the next segment resumes
    from)."""

    def step(carry, inputs):
        o, a, r = inputs
        carry, z = encoder.apply(params, carry, o, a, r)
        return carry, (carry, z)

    final, (carries, z) = jax.lax.scan(step, carry, (obs, prev_action, reset))
    return final, carries, z
