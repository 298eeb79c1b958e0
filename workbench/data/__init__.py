"""Data: sources of examples, the split, loaders and the task they define."""
