"""Model Workbench core: specs, building, data, training, export. No Qt in here."""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (dynamic version), so does `workbench --version`
