"""The Evaluation tab. "Last epoch": after each epoch, the confusion matrix as an image and
validation samples with their predicted and true labels, worst mistakes first. "Test
metrics": at the end of a run (``FinishedEvent.evaluation``) and for any checkpoint chosen with
Evaluate Checkpoint… (``workbench.training.evaluation.evaluate_weights`` on a worker thread,
with a copy of the project's model and data settings), the per-class table, averages,
confusion matrix and the binary curves or regression figures (``metrics_view.MetricsView``).

The matrix is painted from ``EpochEvent.confusion`` (rows: true class, columns: predicted),
each row shaded by the share of that class (so a rare class's mistakes stand out as much
as a common one's), with counts written in when the cells are big enough. The samples come
from ``workbench.training.samples`` (gathered in the engine thread).
"""
from __future__ import annotations

import numpy as np
import os
from dataclasses import dataclass

from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import (QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QTabWidget, QVBoxLayout, QWidget)

from workbench.training import evaluation
from workbench.training.samples import SampleGrid

from ui.common import theme
from ui.common.pictures import image_pixmap
from ui.common.workers import Worker, start_worker
from ui.insight.explanations_window import ExplanationsWindow
from ui.training.metrics_view import MetricsView

TILE = 56  # sample image side on screen, pixels
TEXT_TILE_WIDTH = 180  # a table row's values wrap in a tile this wide
NAMES_UP_TO = 30  # classes: more than that show no names beside the matrix (the tooltip names a cell)
NAME_SHARE = 0.35  # class names take at most this share of the matrix widget's width (or height, above it)


@dataclass
class Text:
    """One piece of text around the matrix: what is drawn, where (widget coordinates), and
    whether it runs upwards (column names that do not fit across their cell)."""
    text: str
    rect: QRect
    vertical: bool = False


def matrix_image(matrix: np.ndarray) -> QImage:
    """One pixel per cell: white (none of the row) to blue (the whole row) on the diagonal,
    white to red off it."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(m)
    rgb = np.empty((n, n, 3), dtype=np.float64)
    white = np.array(theme.MATRIX_EMPTY, dtype=np.float64)
    good, bad = np.array(theme.MATRIX_RIGHT, dtype=np.float64), np.array(theme.MATRIX_WRONG, dtype=np.float64)
    target = np.where(np.eye(n, dtype=bool)[..., None], good, bad)
    strength = np.sqrt(share)[..., None]  # sqrt: a few mistakes still show
    rgb[:] = white + (target - white) * strength
    pixels = np.ascontiguousarray(rgb.round().astype(np.uint8))
    image = QImage(pixels.data, n, n, 3 * n, QImage.Format.Format_RGB888)
    return image.copy()  # own the pixels: the numpy buffer goes away


class ConfusionMatrix(QWidget):
    cellClicked = Signal(int, int)  # true class (row), predicted class (column)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.matrix: np.ndarray | None = None
        self.names: list[str] = []
        self.image: QImage | None = None
        self.setMinimumSize(90, 56)  # small: the Last epoch / Test metrics tabs sit above it in the Training dock
        self.setMouseTracking(True)

    def set_matrix(self, matrix: list[list[int]], names: list[str]) -> None:
        self.matrix = np.asarray(matrix, dtype=np.int64) if matrix else None
        self.names = [str(n) for n in names] or [str(i) for i in range(len(matrix))]
        self.image = matrix_image(self.matrix) if self.matrix is not None else None
        self.update()

    def _geometry(self) -> tuple[QRect, float]:
        area, cell, _ = self._layout()
        return area, cell

    def texts(self) -> list[Text]:
        """Everything written around the matrix: "predicted", "true" and the class names."""
        return self._layout()[2] if self.matrix is not None else []

    def _layout(self) -> tuple[QRect, float, list[Text]]:
        """The matrix square and the texts around it, none cut or over another: row names at
        their full width (up to NAME_SHARE of the widget, elided past that) right of the
        upright "true"; column names across their cells when they fit, else upwards."""
        n = len(self.matrix)
        fm = QFontMetrics(self.font())
        line = fm.height()
        names = self.names if n <= NAMES_UP_TO else []
        widest = max((fm.horizontalAdvance(name) for name in names), default=0)
        row_names = min(widest + 2, int(self.width() * NAME_SHARE)) + 4 if names else 0
        left = line + 2 + row_names
        vertical = False
        top = 2 * line + 2 if names else line + 2
        side = max(10, min(self.width() - left, self.height() - top) - 4)
        columns = names
        if names and widest > side / n - 2:  # whole names do not fit across: what tells them apart ...
            prefix = os.path.commonprefix(names) if len(names) > 1 else ""
            cut = max(prefix.rfind(c) for c in "_-. :") + 1  # up to a separator: "class_0" -> "0"
            columns = [name[cut:] for name in names]
            widest = max(fm.horizontalAdvance(c) for c in columns)
        if names and widest > side / n - 2:  # ... or upwards
            vertical = True
            top = line + 2 + min(widest, int(self.height() * NAME_SHARE)) + 4
            side = max(10, min(self.width() - left, self.height() - top) - 4)
        area, cell = QRect(left, top, side, side), side / n
        texts = [Text("predicted", QRect(area.left(), 0, area.width(), line)),
                 Text("true", QRect(0, area.top(), line, area.height()), True)]
        for i, (name, column) in enumerate(zip(names, columns)):
            across = QRect(line + 2, int(area.top() + i * cell), row_names - 4, max(line, int(cell)))
            if cell < line:
                across.moveTop(int(area.top() + (i + 0.5) * cell - line / 2))
            texts.append(Text(fm.elidedText(name, Qt.TextElideMode.ElideRight, across.width()), across))
            if vertical:
                up = QRect(int(area.left() + (i + 0.5) * cell - line / 2), line + 2, line, top - line - 6)
                texts.append(Text(fm.elidedText(column, Qt.TextElideMode.ElideRight, up.height()), up, True))
            else:
                texts.append(Text(column, QRect(int(area.left() + i * cell), line + 1, int(cell), line)))
        return area, cell, texts

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        if self.matrix is None:
            return None
        area, cell = self._geometry()
        if not area.contains(pos):
            return None
        n = len(self.matrix)
        return min(n - 1, int((pos.y() - area.top()) / cell)), min(n - 1, int((pos.x() - area.left()) / cell))

    def mouseMoveEvent(self, event) -> None:
        hit = self.cell_at(event.position().toPoint())
        self.setCursor(Qt.CursorShape.ArrowCursor if hit is None else Qt.CursorShape.PointingHandCursor)
        if hit is None:
            self.setToolTip("Rows: true class; columns: predicted. Blue: right, red: mistaken. Click a cell to "
                            "see its samples and why the model predicts them so.")
            return
        t, p = hit
        row = int(self.matrix[t].sum())
        count = int(self.matrix[t, p])
        share = f" ({100 * count / row:.1f}% of class {self.names[t]})" if row else ""
        self.setToolTip(f"true {self.names[t]}, predicted {self.names[p]}: {count} example"
                        f"{'s' if count != 1 else ''}{share}")

    def mouseReleaseEvent(self, event) -> None:
        hit = self.cell_at(event.position().toPoint()) if event.button() == Qt.MouseButton.LeftButton else None
        if hit is not None:
            self.cellClicked.emit(*hit)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        if self.matrix is None or self.image is None:
            p.setPen(QColor(theme.MUTED_TEXT))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       "The confusion matrix shows after the first epoch\n(classification with validation data)")
            p.end()
            return
        area, cell, texts = self._layout()
        p.drawImage(area, self.image)  # smooth-free: one pixel per cell, scaled up
        n = len(self.matrix)
        small = QFont(self.font())
        small.setPixelSize(max(7, min(12, int(cell * 0.6))))
        p.setFont(small)
        p.setPen(QColor(theme.FRAME))
        p.drawRect(area.adjusted(0, 0, -1, -1))
        if cell >= 12:
            rows = self.matrix.sum(axis=1)
            for t in range(n):
                for q in range(n):
                    count = int(self.matrix[t, q])
                    if not count:
                        continue
                    strong = rows[t] and count / rows[t] > 0.4
                    p.setPen(QColor(theme.MATRIX_STRONG_TEXT if strong else theme.TEXT))
                    p.drawText(QRect(int(area.left() + q * cell), int(area.top() + t * cell), int(cell), int(cell)),
                               Qt.AlignmentFlag.AlignCenter, str(count))
        p.setPen(QColor(theme.SOFT_TEXT))
        p.setFont(self.font())
        for t in texts:
            r = t.rect
            if not t.vertical:
                align = Qt.AlignmentFlag.AlignCenter if r.top() < area.top() else \
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                p.drawText(r, align, t.text)
                continue
            p.save()  # upwards: drawn across a rect of the same size turned a quarter
            p.translate(r.left(), r.bottom())
            p.rotate(-90)
            align = Qt.AlignmentFlag.AlignCenter if t.text == "true" else \
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
            p.drawText(QRect(0, 0, r.height(), r.width()), align, t.text)
            p.restore()
        p.end()


class SampleTiles(QWidget):
    """Validation samples as tiles: image (or values), 'true → predicted (confidence)'."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.columns = 3
        self.grid: SampleGrid | None = None
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(2, 2, 2, 2)
        self._layout.setSpacing(4)
        self._layout.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.tiles: list[QFrame] = []

    def set_grid(self, grid: SampleGrid | None) -> None:
        self.grid = grid
        for tile in self.tiles:
            self._layout.removeWidget(tile)
            tile.deleteLater()
        self.tiles = []
        if grid is None:
            return
        names = grid.class_names
        for n, s in enumerate(grid.samples):
            tile = QFrame(objectName="sampleWrong" if s.wrong else "sampleRight")
            tile.setFrameShape(QFrame.Shape.StyledPanel)
            box = QVBoxLayout(tile)
            box.setContentsMargins(3, 3, 3, 3)
            box.setSpacing(1)
            if s.image is not None:
                picture = QLabel()
                picture.setPixmap(image_pixmap(s.image, TILE))
                picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
                box.addWidget(picture)
            else:
                values = QLabel(s.text)
                values.setWordWrap(True)
                values.setObjectName("muted")
                box.addWidget(values)
            true, pred = _name(names, s.true), _name(names, s.predicted)
            caption = QLabel(f"<span style='color:{theme.BAD if s.wrong else theme.GOOD}'>"
                             f"{'&#10007;' if s.wrong else '&#10003;'} {pred}</span> "
                             f"<span style='color:{theme.MUTED_TEXT}'>({s.confidence:.0%}) true {true}</span>")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setWordWrap(s.image is None)
            box.addWidget(caption)
            tile.setToolTip(f"validation example {s.index}: true {true}, predicted {pred} with "
                            f"{s.confidence:.1%} confidence")
            if s.image is None:  # values wrap at a fixed width; the tile is as tall as they need
                tile.setFixedWidth(TEXT_TILE_WIDTH)
                tile.setFixedHeight(box.totalHeightForWidth(TEXT_TILE_WIDTH))
            else:
                tile.setFixedSize(tile.sizeHint())  # tiles keep their size; more of them fit a wide panel
            self.tiles.append(tile)
        self._place()
        # lay the tiles out now: a layout shows new children a few event-loop rounds later (inside the
        # page tabs the scroll area only then gave them their height, drawing them over each other)
        for tile in self.tiles:
            tile.show()
        need = self._layout.totalMinimumSize().height()
        if self.height() < need:
            self.resize(self.width(), need)

    def _place(self) -> None:
        """As many columns as fit the width (tiles wrap instead of scrolling sideways)."""
        if not self.tiles:
            return
        tile_w = max(t.width() for t in self.tiles) + self._layout.horizontalSpacing()
        columns = max(1, (self.width() - 4) // max(1, tile_w))
        if columns == self.columns and self._layout.count() == len(self.tiles):
            return
        self.columns = columns
        for tile in self.tiles:
            self._layout.removeWidget(tile)
        for n, tile in enumerate(self.tiles):
            self._layout.addWidget(tile, n // columns, n % columns)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place()


def _name(names: list[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def choose_checkpoint(parent, folder: str) -> str | None:
    """Ask for a checkpoint or weights file to evaluate (tests replace this)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Evaluate a checkpoint", folder,
                                          "Checkpoints and weights (*.ckpt *.pth *.pt *.safetensors *.bin);;"
                                          "All files (*)")
    return path or None


class EvaluationPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._pending: tuple | None = None  # the latest epoch, drawn when the panel shows
        self._epoch: int | None = None  # the epoch the matrix is of
        self._window = None  # the main window, for the explanations of a cell (attach)
        self.explanations: ExplanationsWindow | None = None
        self._job: Worker | None = None  # Evaluate Checkpoint's worker
        self.title = QLabel("No evaluation yet: it appears after each epoch.", objectName="evalTitle")
        self.title.setWordWrap(True)
        self.matrix = ConfusionMatrix()
        self.samples = SampleTiles()
        scroll = QScrollArea()
        scroll.setWidget(self.samples)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        row = QHBoxLayout()
        row.addWidget(self.matrix)
        row.addWidget(scroll, 1)
        epoch_page = QWidget()
        epoch_layout = QVBoxLayout(epoch_page)
        epoch_layout.setContentsMargins(0, 2, 0, 0)
        epoch_layout.addWidget(self.title)
        epoch_layout.addLayout(row, 1)
        self.metrics = MetricsView(ConfusionMatrix())  # a matrix of its own: the test split's
        self.evaluate_button = QPushButton("Evaluate Checkpoint…")
        self.evaluate_button.setToolTip("Test metrics of a checkpoint or weights file of this model: per-class "
                                        "precision, recall and F1, the confusion matrix, ROC / PR curves for two "
                                        "classes (the same as `workbench evaluate`)")
        self.evaluate_button.clicked.connect(lambda: self.evaluate_checkpoint())
        self.status = QLabel("", objectName="muted")
        self.status.setWordWrap(True)
        self.status.hide()
        self.metrics.add_tool(self.evaluate_button)
        test_page = QWidget()
        test_layout = QVBoxLayout(test_page)
        test_layout.setContentsMargins(0, 2, 0, 0)
        test_layout.addWidget(self.status)
        test_layout.addWidget(self.metrics, 1)
        self.pages = QTabWidget(objectName="evaluationPages")
        self.pages.setDocumentMode(True)
        self.pages.addTab(epoch_page, "Last epoch")
        self.pages.addTab(test_page, "Test metrics")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.pages, 1)
        self.matrix.cellClicked.connect(self.open_cell)

    def attach(self, window) -> None:
        """Clicking a cell opens the explanations window on ``window``'s trained model."""
        self._window = window

    def open_cell(self, true: int, predicted: int) -> None:
        """The validation samples of a cell and their explanations (``ui.insight``)."""
        if self._window is None or self.matrix.matrix is None:
            return
        if self.explanations is None:
            self.explanations = ExplanationsWindow(self._window)
        self.explanations.show_cell(true, predicted, self.matrix.names, int(self.matrix.matrix[true, predicted]),
                                    self._epoch)

    # ------------------------------------------------------------ test metrics
    def show_report(self, report: dict | evaluation.Report, source: str) -> None:
        """Show a report (``FinishedEvent.evaluation`` or an ``evaluation.Report``) on the Test
        metrics page and bring that page forward."""
        if isinstance(report, dict):
            report = evaluation.Report.from_dict(report)
        self.metrics.set_report(report, source)
        self.say("")
        self.pages.setCurrentIndex(1)

    def evaluate_checkpoint(self, path: str | None = None) -> None:
        """Ask for a checkpoint (unless given) and evaluate it on a worker with a copy of the
        project's model and data settings; the answer shows on the Test metrics page."""
        if self._window is None:
            return
        project = self._window.doc.project
        if path is None:
            runs = [r["dir"] for r in reversed(project.runs) if r.get("dir")]
            path = choose_checkpoint(self, runs[0] if runs else str(project.run_folder()))
        if not path:
            return
        if self._job is not None and self._job.job_running():
            self.say("An evaluation is running; wait for it to finish.")
            return
        self.pages.setCurrentIndex(1)
        self.say(f"Evaluating {os.path.basename(path)}…")
        self.evaluate_button.setEnabled(False)
        name = os.path.basename(path)
        self._job = start_worker(evaluation.evaluate_weights, self._window.doc.spec.copy(), project.data, path,
                                 None, project.training.loss, name="evaluate-checkpoint",
                                 returned=lambda report: self.show_report(report, f"checkpoint {name}"),
                                 errored=self._evaluation_failed, finished=self._evaluation_done)

    def _evaluation_failed(self, exc: Exception) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.say(f"<span style='color:{theme.BAD}'>Cannot evaluate: {text}</span>")
        self.status.setToolTip(str(exc))

    def say(self, text: str) -> None:
        """A line above the test metrics (progress, an error); empty hides it."""
        self.status.setText(text)
        self.status.setToolTip("")
        self.status.setVisible(bool(text))

    def _evaluation_done(self) -> None:
        self.evaluate_button.setEnabled(True)

    def shutdown(self) -> None:
        """The window closes: the evaluation worker must not outlive it."""
        if self._job is not None:
            self._job.quit()
            self._job.wait()

    def resizeEvent(self, event) -> None:
        """The matrix stays square (as tall as the panel allows); the samples get the rest."""
        super().resizeEvent(event)
        side = self.height() - self.title.sizeHint().height() - 40
        self.matrix.setFixedWidth(max(90, min(side, int(self.width() * 0.5))))

    def show_epoch(self, epoch: int, val_acc: float | None, confusion: list[list[int]], names: list[str],
                   grid: SampleGrid | None) -> None:
        """Show an epoch's evaluation; while the panel is hidden (another tab is up) only the
        latest is kept and drawn when it shows: building it costs the training thread."""
        self._pending = (epoch, val_acc, confusion, names, grid)
        if self.isVisible():
            self._draw_pending()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._draw_pending()

    def _draw_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        epoch, val_acc, confusion, names, grid = pending
        self._epoch = epoch
        if confusion:
            m = np.asarray(confusion)
            wrong = int(m.sum() - np.trace(m))
            acc = f" · validation accuracy {val_acc:.3f}" if val_acc is not None else ""
            self.title.setText(f"<b>Epoch {epoch}</b>{acc} · {wrong} of {int(m.sum())} wrong · "
                               "samples: mistakes first (most confident first)")
        else:
            self.title.setText(f"<b>Epoch {epoch}</b>: no confusion matrix (regression or no validation data)")
        self.matrix.set_matrix(confusion, names)
        self.samples.set_grid(grid)

    def clear(self) -> None:
        self._pending = None
        self.title.setText("No evaluation yet: it appears after each epoch.")
        self.matrix.set_matrix([], [])
        self.samples.set_grid(None)
        self.metrics.clear()
        self.say("")
        self.pages.setCurrentIndex(0)
