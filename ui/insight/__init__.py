"""Insight in the window: per-layer cost views and the training Health tab."""
