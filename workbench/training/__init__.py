"""Training: the engine, its controls, the step loop, checkpoints, events, run log, memory, DDP."""
