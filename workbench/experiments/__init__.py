"""Experiments: hyperparameter and architecture sweeps on Optuna, the learning-rate range test."""
