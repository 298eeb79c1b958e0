"""Prediction in the window: the dock that shows the model's class probabilities for one example."""
