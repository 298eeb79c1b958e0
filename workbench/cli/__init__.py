"""Headless commands (never import Qt)."""
