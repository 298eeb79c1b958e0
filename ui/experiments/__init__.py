"""Experiments in the window: the Sweep dock and the learning-rate finder."""
