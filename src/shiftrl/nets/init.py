"""Weight initialisers that avoid LAPACK custom calls.

`nn.initializers.orthogonal` takes a QR of a Gaussian matrix. Inside a vmapped
critic ensemble (or vmapped seeds) that becomes a batched LAPACK QR, and jaxlib's
CPU kernel fans a batched QR out onto the same XLA thread pool it runs on. When
two such QRs run at once and the pool has no free thread, both wait forever for
work items nobody can run (seen with jax 0.10.2 on a 2-core machine: CQL's default
3x256 init hung in most tries; the threads' stacks sit in the QR kernel's wait).
Gram-Schmidt in plain XLA ops gives the same distribution (Q with a positive-diagonal
R, i.e. Haar-distributed) and no custom call.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def orthonormal_columns(a: jax.Array) -> jax.Array:
    """Q of the QR of a tall matrix a [n, m], n >= m, with diag(R) > 0.

    Classical Gram-Schmidt applied twice per column ("twice is enough"), which
    keeps float32 columns orthogonal to ~1e-6 for the random matrices used here.
    """
    n, m = a.shape
    if n < m:
        raise ValueError(f"need a tall matrix, got shape {a.shape}")

    def add_column(j: jax.Array, q: jax.Array) -> jax.Array:
        # Columns j.. of q are still zero, so projecting on all of q only removes
        # the components along the columns already built.
        v = jax.lax.dynamic_index_in_dim(a, j, axis=1, keepdims=False)
        for _ in range(2):
            v = v - q @ (q.T @ v)
        v = v / jnp.sqrt(jnp.sum(v**2))
        return jax.lax.dynamic_update_index_in_dim(q, v, j, axis=1)

    return jax.lax.fori_loop(0, m, add_column, jnp.zeros_like(a))


def orthogonal(scale: float = 1.0) -> Callable[..., jax.Array]:
    """Drop-in for `nn.initializers.orthogonal(scale)` on Dense kernels [in, out]."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        if len(shape) != 2:
            raise ValueError(f"orthogonal init supports 2-D kernels, got shape {shape}")
        rows, cols = shape
        tall = (max(rows, cols), min(rows, cols))
        q = orthonormal_columns(jax.random.normal(key, tall, jnp.float32))
        q = q if rows >= cols else q.T
        return (scale * q).astype(dtype)

    return init
