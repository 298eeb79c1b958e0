"""Shared pieces of the window: background workers, icons, theme."""
