"""Training in the window: dock, panel, settings, the engine bridge, gauges, evaluation, plots."""
