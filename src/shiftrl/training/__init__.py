"""Training: the compiled loop, evaluation, checkpoints, logs and run folders."""
