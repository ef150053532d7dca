"""Training: the loop, evaluation, LR schedule, batch sampler, checkpoints, sanity checks."""
