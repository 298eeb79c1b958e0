"""Model Workbench window (PySide6). Imports workbench; never the other way round."""
