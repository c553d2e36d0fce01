"""Small shared pieces: the batch type, user-facing errors, tiny JAX helpers."""
