"""The summary bar (the window's status bar): input and output shape, parameter totals,
model size, the costs (MACs per example and the training memory forecast at the project's batch
size, from ``ProjectDocument.costs``; the tooltip has the forecast by part and the largest batch
that fits), and the first problem (a link that selects the broken row) with, where its fix is
mechanical, a "Fix" button (its tooltip names the fix) that makes it as one undoable edit. Always visible;
the status bar's passing messages (refused edits, "Saved ...", menu hints) show at its end,
cut in the middle when too long (the start and the end stay readable; the tooltip has it all)."""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QStylePainter

from workbench.insight import costs as insight_costs
from workbench.model.shapes import fmt

from ui.common import theme
from ui.editor.fix_button import FixButton


def _cell(name: str) -> QLabel:
    label = QLabel(objectName=name)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setProperty("summary", True)
    label.setMinimumWidth(1)  # let a narrow window clip the bar rather than refuse to shrink
    return label


class ElidedLabel(QLabel):
    """A one-line plain-text label that cuts a long text in the middle ("Could not ren…ts/a.ckpt")
    instead of losing its start, and takes only the width its row leaves over."""

    def __init__(self, name: str):
        super().__init__(objectName=name)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setProperty("summary", True)

    def shown_text(self) -> str:
        """What is painted: the text, elided to the label's width."""
        width = self.contentsRect().width()
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideMiddle, max(width, 0))

    def paintEvent(self, event) -> None:
        painter = QStylePainter(self)
        painter.drawItemText(self.contentsRect(), int(self.alignment()), self.palette(), self.isEnabled(),
                             self.shown_text(), self.foregroundRole())


class SummaryBar(QFrame):
    problemClicked = Signal(str)  # layer id

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.setObjectName("summary")
        self.doc = doc
        self.shapes = _cell("summaryShapes")
        self.params = _cell("summaryParams")
        self.weights_size = _cell("summarySize")
        self.costs = _cell("summaryCosts")
        self._cost_texts = ("", "")  # (with the batch size, without)
        self.status = _cell("summaryStatus")
        self.status.linkActivated.connect(self.problemClicked.emit)
        self.fix_button = FixButton(doc, "summaryFix", compact=True)
        self.fix_button.refused.connect(self.show_message)
        self.message = ElidedLabel("summaryMessage")
        self.message.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 3, 8, 3)
        row.setSpacing(18)
        for label in (self.shapes, self.params, self.weights_size, self.costs):
            row.addWidget(label)
        problem = QHBoxLayout()  # the fix button sits next to the problem it fixes
        problem.setSpacing(6)
        problem.addWidget(self.status)
        problem.addWidget(self.fix_button)
        row.addLayout(problem)
        row.addWidget(self.message, 1)
        doc.changed.connect(self.refresh)
        doc.fitChanged.connect(self.refresh)
        doc.costs.updated.connect(self.show_costs)
        self.refresh()
        self.show_costs()

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setToolTip(text)

    def show_costs(self) -> None:
        """MACs per example and the training memory at the batch size; red when it does not fit.
        Where the bar is short of room the words after the memory go, then the whole cell (the
        same figures are in the stack's cost columns and beside the batch size)."""
        report = self.doc.costs.report
        self._cost_texts = ("", "")
        if report is not None:
            f = report.forecast
            macs, memory = insight_costs.count(report.costs.macs), insight_costs.size(f.total)
            warn = (f"<span style='color:{theme.BAD}'>", " &#9888;</span>") if report.fits is False else ("", "")
            self._cost_texts = (f"<b>{macs}</b> MACs &middot; {warn[0]}<b>{memory}</b> to train at batch "
                                f"{f.batch}{warn[1]}", f"<b>{macs}</b> MACs &middot; {warn[0]}<b>{memory}</b>{warn[1]}")
            self.costs.setToolTip(insight_costs.breakdown(report))
        self._fit_costs()

    def _fit_costs(self) -> None:
        full, short = self._cost_texts
        row = self.layout()
        others = [w for w in (self.shapes, self.params, self.weights_size, self.status) if not w.isHidden()]
        margins = row.contentsMargins()
        # the row: the cells, the costs, the problem (status and Fix), the message: a spacing between each
        room = (self.width() - margins.left() - margins.right() - sum(w.sizeHint().width() for w in others)
                - row.spacing() * (len(others) + 1))
        if not self.fix_button.isHidden():
            room -= self.fix_button.sizeHint().width() + 6
        for text in (full, short):
            self.costs.setText(text)
            if text and self.costs.sizeHint().width() <= room:
                self.costs.show()
                return
        self.costs.hide()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_costs()

    def refresh(self) -> None:
        spec, info = self.doc.spec, self.doc.info
        dtype = "" if spec.input_dtype == "float32" else f" {spec.input_dtype}"
        self.shapes.setText(f"<b>Input</b> {fmt(spec.input_shape)}{dtype} &rarr; <b>Output</b> "
                            f"{fmt(info.output_shape)}")
        self.params.setText(f"<b>{info.total_params:,}</b> params &middot; {info.trainable_params:,} trainable "
                            f"&middot; {info.frozen_params:,} frozen")
        self.params.setToolTip("Parameters: total, learned by training, and kept fixed (frozen)")
        self.weights_size.setText(f"<b>{info.size_mb:.2f}</b> MB")
        self.weights_size.setToolTip("Size of the weights and buffers as float32")
        error = info.error
        fit = self.doc.fit_error if error is None else None
        self.fix_button.show_remedy((error or fit).remedy if (error or fit) is not None else None)
        if error is None:
            n = len(info.rows())
            self.status.setText(f"&#10003; {n} layer{'s' if n != 1 else ''}, all shapes fit" if n
                                else "no layers yet")
            self.status.setToolTip("")
            if fit is not None:  # the shapes fit, the data does not
                href = fit.layer_id if self.doc.fit_problem_for(fit.layer_id) else ""  # "": the input's
                self.status.setText(f"<a href='{escape(href)}' style='color:{theme.ERROR}'>&#9888; the model does not "
                                    "fit the data</a>")
                self.status.setToolTip(f"{fit.problem}. Fix: {fit.fix}" if fit.fix else fit.problem)
        else:
            problems = sum(1 for r in info.rows() if r.error is not None)
            more = f" (+{problems - 1} more)" if problems > 1 else ""
            self.status.setText(f"<a href='{escape(error.layer_id)}' style='color:{theme.ERROR}'>"
                                f"&#9888; '{escape(error.layer_id)}' (row {error.position}) cannot work"
                                f"</a>{more}")
            self.status.setToolTip(f"{error.problem}. Fix: {error.fix}" if error.fix else error.problem)
        self._fit_costs()
