"""The export dialog and its results."""
