"""The network initialisers: orthogonal kernels without LAPACK custom calls."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shiftrl.learners import CQL
from shiftrl.nets.init import orthogonal
from tests.conftest import FIXED_SPEC as SPEC


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4)])
def test_orthogonal_kernel_has_orthonormal_rows_or_columns(shape):
    w = np.asarray(orthogonal(1.5)(jax.random.PRNGKey(0), shape))
    assert w.shape == shape
    small = min(shape)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 1.5**2 * np.eye(small), atol=1e-5)
    other = np.asarray(orthogonal(1.5)(jax.random.PRNGKey(1), shape))
    assert not np.allclose(w, other)


@pytest.mark.parametrize("shape", [(7, 5), (5, 7)])
def test_orthogonal_equals_flax_initializer(shape):
    # Same Gaussian draw and the same Q (diag R > 0) as the QR-based initializer.
    key = jax.random.PRNGKey(3)
    expected = nn.initializers.orthogonal(0.5)(key, shape)
    np.testing.assert_allclose(orthogonal(0.5)(key, shape), expected, atol=1e-5)


def test_cql_default_init_has_no_lapack_call():
    # Batched LAPACK QR in a vmapped ensemble deadlocked XLA's CPU thread pool
    # (CQL's default 3x256 orthogonal init); lowering alone shows the call is gone.
    learner = CQL(CQL.Config(), SPEC)
    hlo = jax.jit(learner.init).lower(jax.random.PRNGKey(0)).as_text()
    assert "lapack" not in hlo.lower()


def test_context_encoder_forgets_the_previous_episode_at_a_reset():
    """MAPLE's GRU context: after a reset the embedding depends only on the new episode."""
    from shiftrl.nets.context import ContextEncoder, encode_sequence

    enc = ContextEncoder(hidden=8, embedding=4)
    batch, steps = 3, 5
    carry = enc.initial_carry((batch,))
    obs = jax.random.normal(jax.random.PRNGKey(1), (steps, batch, 2))
    prev_action = jnp.zeros((steps, batch, 1))
    reset = jnp.zeros((steps, batch), bool).at[0].set(True).at[3].set(True)
    params = enc.init(jax.random.PRNGKey(0), carry, obs[0], prev_action[0], reset[0])
    _, carries, z = encode_sequence(enc, params, carry, obs, prev_action, reset)
    assert carries.shape == (steps, batch, 8) and z.shape == (steps, batch, 4)
    other_past = obs.at[:3].set(0.0)
    _, _, z_other = encode_sequence(enc, params, carry, other_past, prev_action, reset)
    assert jnp.allclose(z[3:], z_other[3:])  # the new episode does not see the old one
    assert not jnp.allclose(z[:3], z_other[:3])
