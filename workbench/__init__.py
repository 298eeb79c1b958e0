"""Model Workbench core: specs, building, data, training, export. No Qt in here."""

__version__ = "0.1.0"
