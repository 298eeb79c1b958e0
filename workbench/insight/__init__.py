"""Insight: per-layer cost (FLOPs, memory forecast, latency) and training health."""
