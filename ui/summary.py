"""The summary bar under the stack: input and output shape, parameter totals, model size,
and the first problem (a link that selects the broken row). Always visible."""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel

from workbench.shapes import fmt

from . import icons


def _cell(name: str) -> QLabel:
    label = QLabel(objectName=name)
    label.setProperty("summary", True)
    return label


class SummaryBar(QFrame):
    problemClicked = Signal(str)  # layer id

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.setObjectName("summary")
        self.doc = doc
        self.shapes = _cell("summaryShapes")
        self.params = _cell("summaryParams")
        self.size = _cell("summarySize")
        self.status = _cell("summaryStatus")
        self.status.linkActivated.connect(self.problemClicked.emit)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 5, 10, 5)
        row.setSpacing(22)
        for label in (self.shapes, self.params, self.size):
            row.addWidget(label)
        row.addStretch(1)
        row.addWidget(self.status)
        doc.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        spec, info = self.doc.spec, self.doc.info
        dtype = "" if spec.input_dtype == "float32" else f" {spec.input_dtype}"
        self.shapes.setText(f"<b>Input</b> {fmt(spec.input_shape)}{dtype} &rarr; <b>Output</b> "
                            f"{fmt(info.output_shape)}")
        self.params.setText(f"<b>Parameters</b> {info.total_params:,} &nbsp; trainable "
                            f"{info.trainable_params:,} &nbsp; frozen {info.frozen_params:,}")
        self.size.setText(f"<b>Size</b> {info.size_mb:.2f} MB")
        error = info.error
        if error is None:
            n = len(info.rows())
            self.status.setText(f"{n} layer{'s' if n != 1 else ''}, all shapes fit")
            self.status.setToolTip("")
        else:
            problems = sum(1 for r in info.rows() if r.error is not None)
            more = f" (+{problems - 1} more)" if problems > 1 else ""
            self.status.setText(f"<a href='{escape(error.layer_id)}' style='color:{icons.ERROR_COLOR}'>"
                                f"&#9888; row {error.position} '{escape(error.layer_id)}' cannot work here"
                                f"</a>{more}")
            self.status.setToolTip(f"{error.problem}. Fix: {error.fix}" if error.fix else error.problem)
