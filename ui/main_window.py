"""Main window (placeholder until the layer-stack window lands): shows a project's summary."""
from __future__ import annotations

from PySide6.QtWidgets import QMainWindow, QPlainTextEdit

from workbench import build, project, templates
from workbench.shapes import fmt


class MainWindow(QMainWindow):
    def __init__(self, path: str | None = None):
        super().__init__()
        proj = project.load(path) if path else templates.load("digits_cnn")
        info = build.infer(proj.model)
        lines = [f"{r.position:>4} {r.id:12} {r.type:18} {fmt(r.out_shape):16} {r.params or 0:>10,}"
                 for r in info.rows()]
        view = QPlainTextEdit("\n".join(lines))
        view.setReadOnly(True)
        self.setCentralWidget(view)
        self.setWindowTitle(f"{proj.name} - Model Workbench")
        self.resize(900, 600)
