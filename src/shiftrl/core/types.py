"""The batch every learner and add-on sees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

# Domain labels carried by every transition, so add-ons act only where they should
# (DARA corrects source rewards, MOPO penalizes model rewards, target data is untouched).
TARGET, SOURCE, MODEL = 0, 1, 2
DOMAIN_NAMES = {TARGET: "target", SOURCE: "source", MODEL: "model"}


# A *segment batch* (recurrent learners, MAPLE): B segments of H consecutive steps of one
# episode or one model rollout, stored segment-major as N = B * H ordinary rows, so every
# add-on that edits rows (DARA's and SRPO's rewards, domain labels) works on it unchanged.
# Per-row extras: the previous action a_{t-1} (zero at an episode start) and a `valid` flag
# (0 on the padding after an episode's end or a model rollout's termination); per-segment
# extras (leading dim B, which tells H = N // B): the recurrent states the policy's and the
# value's context encoders start the segment from, and the data's reward range [r_min, r_max]
# (for MAPLE's Q-target clip).
SEGMENT_PREV_ACTION = "segment/prev_action"
SEGMENT_VALID = "segment/valid"
SEGMENT_HIDDEN_POLICY = "segment/hidden_policy"
SEGMENT_HIDDEN_VALUE = "segment/hidden_value"
SEGMENT_REWARD_RANGE = "segment/reward_range"
SEGMENT_LEVEL = (SEGMENT_HIDDEN_POLICY, SEGMENT_HIDDEN_VALUE, SEGMENT_REWARD_RANGE)
"""The per-segment (not per-row) extras."""


class Batch(struct.PyTreeNode):
    """A mini-batch of transitions, all arrays with leading dimension B.

    `terminal` is 1.0 only where the environment truly terminated; a time-limit
    truncation is stored as 0.0 so that learners keep bootstrapping through it.
    """

    obs: jax.Array  # [B, obs_dim], already normalized if the run normalizes states
    action: jax.Array  # [B, act_dim], scaled to [-1, 1]
    reward: jax.Array  # [B], after the learner's reward scaling
    next_obs: jax.Array  # [B, obs_dim]
    terminal: jax.Array  # [B] float, 1.0 = true termination (no bootstrap)
    domain: jax.Array  # [B] int32, TARGET / SOURCE / MODEL
    extras: dict[str, jax.Array] = struct.field(default_factory=dict)
    """Per-transition annotations add-ons attach to the data (e.g. SSAR's "ssar/trust")."""

    @property
    def segments(self) -> int | None:
        """B for a segment batch (see `SEGMENT_HIDDEN_POLICY`), None for plain transitions."""
        hidden = self.extras.get(SEGMENT_HIDDEN_POLICY)
        return None if hidden is None else hidden.shape[0]

    @property
    def size(self) -> int:
        return self.obs.shape[0]

    @property
    def is_source(self) -> jax.Array:
        return self.domain == SOURCE

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *batches)
