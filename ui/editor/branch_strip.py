"""A Parallel block drawn in the stack: its branches side by side, one column per branch.

The drawing takes the first child rows of a Parallel (``Strip`` rows of the item model, one
uniform row each, spanning every column), so the stack keeps uniform row heights (no per-edit
relayout) and the drawing scrolls, expands and collapses with its block:

    row 0          the fan-out from the block's input and each branch's name
    rows 1..n      the layers of every branch at that depth, as boxes with their output shape
                   (an empty branch shows "identity"; a shorter branch's line runs on; a branch
                   longer than the drawing's ``STRIP_DEPTH`` rows ends in "+n more")
    last row       the lines converging on the merge: "concat dim 1 -> 96x8x8", or in red the
                   problem, with the branch it names marked in red

``StripPainter`` paints one such row (the view's delegate for its first visual column);
``lanes`` and ``hit`` are the geometry the view uses to select a box on a click and to drop a
dragged layer into the column under the mouse (``StackView``). Branches keep their own rows
below the drawing (Branch rows with their layers), where they are edited like any block.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QStyledItemDelegate

from workbench.model.shapes import fmt
from workbench.model.spec import LayerSpec

from ui.common import icons, theme
from ui.editor.stack_cells import STRIP_DEPTH, Strip, strip_rows

LANE_MAX = 230  # px: a branch's column is never wider (a wide window leaves the rest empty)
LANE_MIN = 56  # px: narrower columns than this crowd each other; the drawing then runs past the right edge
_LINE = "#9ca3af"
_PANEL = "#f8fafc"  # the drawing's background, so its rows read as one picture
_BOX = "#ffffff"
MERGE_FILL = "#e8effd"  # the merge box of a Parallel whose branches merge (ERROR_BACKGROUND when they cannot)


@dataclass(frozen=True)
class Target:
    """Where a drop on the drawing goes: row ``at`` of ``branch`` (0: first, len: last)."""

    parallel: str
    lane: int
    branch: str
    at: int


def lanes(area: QRect, count: int) -> list[QRect]:
    """The columns of ``count`` branches in the drawing's area (a row's rect from its indentation on)."""
    width = max(LANE_MIN, min(LANE_MAX, (area.width() - 8) // max(1, count)))
    return [QRect(area.left() + 4 + n * width, area.top(), width, area.height()) for n in range(count)]


def culprits(parallel: LayerSpec, problem: str | None) -> set[str]:
    """The branch a merge problem is about: the one it names as "branch 'id'" (the core names
    the branch that differs first, then the one it was compared with); else every branch it names."""
    if not problem:
        return set()
    ids = {b.id for b in parallel.layers}
    first = re.search(r"branch '([^']+)'", problem)
    if first and first.group(1) in ids:
        return {first.group(1)}
    return {i for i in ids if re.search(rf"(?<![\w]){re.escape(i)}(?![\w])", problem)}


def merge_text(parallel: LayerSpec, info) -> str:
    """What the merge box of a drawing says: 'concat dim 1 -> (96, 8, 8)', 'add -> (32, 8, 8)', or
    'add: cannot merge (b2)' naming the branch (the Parallel row has the whole problem and fix)."""
    merge = parallel.args.get("merge", "concat")
    how = f"{merge} dim {parallel.args.get('dim', 1)}" if merge == "concat" else merge
    problem = info.error.problem if info is not None and info.error is not None else None
    if problem:
        bad = culprits(parallel, problem)
        return f"{how}: cannot merge" + (f" ({', '.join(sorted(bad))})" if bad else "")
    out = info.out_shape if info is not None else None
    return f"{how} \u2192 {fmt(out)}" if out is not None else how


def hit(strip: Strip, area: QRect, x: int, y: int) -> tuple[Target, LayerSpec | None]:
    """What a point of a drawing row is over: the drop target there, and the layer box (or None)."""
    parallel = strip.layer
    columns = lanes(area, len(parallel.layers))
    lane = next((n for n, rect in enumerate(columns) if x < rect.right()), len(columns) - 1)
    branch = parallel.layers[lane]
    last = strip_rows(parallel) - 1
    layer = None
    if strip.row == 0:
        at = 0
    elif strip.row == last:
        at = len(branch.layers)
    elif strip.row == STRIP_DEPTH and len(branch.layers) > STRIP_DEPTH:  # "+n more": drops go last
        at = len(branch.layers)
    elif strip.row - 1 < len(branch.layers):
        layer = branch.layers[strip.row - 1]
        at = strip.row - 1 + (1 if y > area.center().y() else 0)
    else:
        at = len(branch.layers)
    return Target(parallel.id, lane, branch.id, at), layer


class StripPainter(QStyledItemDelegate):
    """Paints a Parallel's drawing rows; every other row as the default delegate does.
    ``area(index, rect)`` (the view's) gives the part of a row the drawing takes; ``selected``
    the ids of the selected layers; ``target`` the drop target under a drag (or None)."""

    def __init__(self, view):
        super().__init__(view)
        self.view = view
        self.target: Target | None = None

    def paint(self, painter, option, index) -> None:
        node = self.view.stack_model.node(index)
        if not isinstance(node, Strip):
            super().paint(painter, option, index)
            return
        painter.save()
        try:
            self._paint_strip(painter, option.rect, node, index)
        finally:
            painter.restore()

    # ------------------------------------------------------------ one row of the drawing
    def _paint_strip(self, painter: QPainter, rect: QRect, strip: Strip, index) -> None:
        area = self.view.strip_area(index, rect)
        # one picture: no alternating row colours under it, the panel from the branches' indentation on
        painter.fillRect(rect, self.view.palette().color(QPalette.ColorRole.Base))
        painter.fillRect(QRect(area.left(), rect.top(), rect.right() - area.left() + 1, rect.height()),
                         QColor(_PANEL))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        parallel = strip.layer
        doc = self.view.stack_model.doc
        info = doc.layer_info(parallel.id)
        problem = info.error.problem if info is not None and info.error is not None else None
        bad = culprits(parallel, problem)
        columns = lanes(area, len(parallel.layers))
        last = strip_rows(parallel) - 1
        line = QPen(QColor(_LINE), 1.2)
        top, bottom, middle = rect.top(), rect.bottom() + 1, rect.center().y() + 0.5
        font = QFont(self.view.font())
        small = QFont(font)
        small.setPointSizeF(max(6.5, font.pointSizeF() - 1))
        fm, small_fm = QFontMetrics(font), QFontMetrics(small)
        selected = set(self.view.selected_ids())
        centers = [c.center().x() + 0.5 for c in columns]

        if strip.row == 0:  # the input fans out to every branch; each branch's name
            painter.setPen(line)
            y = top + 3.5
            painter.drawLine(QPointF(centers[0], y), QPointF(centers[-1], y))
            painter.drawLine(QPointF((centers[0] + centers[-1]) / 2, top), QPointF((centers[0] + centers[-1]) / 2, y))
            for column, x, branch in zip(columns, centers, parallel.layers):
                painter.setPen(line)
                painter.drawLine(QPointF(x, y), QPointF(x, bottom))
                text = small_fm.elidedText(branch.id, Qt.TextElideMode.ElideRight, column.width() - 14)
                width = small_fm.horizontalAdvance(text) + 10
                pill = QRectF(x - width / 2, top + 6, width, rect.height() - 8)
                is_bad = branch.id in bad
                selected_branch = branch.id in selected
                painter.setPen(QPen(QColor(theme.ERROR if is_bad else theme.FOCUS if selected_branch else _LINE), 1))
                painter.setBrush(QColor(theme.ERROR_BACKGROUND if is_bad else theme.ROW_SELECTED if selected_branch
                                        else "#eef2f7"))
                painter.drawRoundedRect(pill, pill.height() / 2, pill.height() / 2)
                painter.setFont(small)
                painter.setPen(QColor(theme.ERROR if is_bad else theme.SOFT_TEXT))
                painter.drawText(pill, int(Qt.AlignmentFlag.AlignCenter), text)
        elif strip.row == last:  # every branch's line converges on the merge
            painter.setPen(line)
            for x in centers:
                painter.drawLine(QPointF(x, top), QPointF(x, middle))
            painter.drawLine(QPointF(centers[0], middle), QPointF(centers[-1], middle))
            text = merge_text(parallel, info)
            span = max(centers[-1] - centers[0], 80.0)
            text = fm.elidedText(text, Qt.TextElideMode.ElideRight, int(span + 40))
            width = fm.horizontalAdvance(text) + 16
            mid = (centers[0] + centers[-1]) / 2
            box = QRectF(mid - width / 2, top + 2, width, rect.height() - 4)
            painter.setPen(QPen(QColor(theme.ERROR if problem else theme.FOCUS), 1.2))
            painter.setBrush(QColor(theme.ERROR_BACKGROUND if problem else MERGE_FILL))
            painter.drawRoundedRect(box, 4, 4)
            painter.setFont(font)
            painter.setPen(QColor(theme.ERROR if problem else theme.TEXT))
            painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), text)
        else:  # the layers at this depth
            depth = strip.row - 1
            for column, x, branch in zip(columns, centers, parallel.layers):
                box = QRectF(column.left() + 4, top + 2.5, column.width() - 8, rect.height() - 5)
                if depth == STRIP_DEPTH - 1 and len(branch.layers) > STRIP_DEPTH:  # the rest, counted
                    self._tag(painter, x, rect, f"+{len(branch.layers) - depth} more", small, small_fm, line)
                elif depth < len(branch.layers):
                    layer = branch.layers[depth]
                    painter.setPen(line)
                    painter.drawLine(QPointF(x, top), QPointF(x, box.top()))
                    painter.drawLine(QPointF(x, box.bottom()), QPointF(x, bottom))
                    self._box(painter, box, layer, doc.layer_info(layer.id), layer.id in selected, font, small)
                elif depth == 0:  # an empty branch passes its input on
                    self._tag(painter, x, rect, "identity", small, small_fm, line)
                else:  # a shorter branch: its output runs on to the merge
                    painter.setPen(line)
                    painter.drawLine(QPointF(x, top), QPointF(x, bottom))
        target = self.target
        if target is not None and target.parallel == parallel.id and strip.row == target.at + 1 \
                and target.lane < len(columns):
            column = columns[target.lane]
            painter.setPen(QPen(QColor(theme.FOCUS), 2))
            painter.drawLine(QPointF(column.left() + 2, top + 1), QPointF(column.right() - 2, top + 1))
        if target is not None and target.parallel == parallel.id and target.lane < len(columns):
            column = columns[target.lane]  # the whole column the drop goes into
            painter.setPen(QPen(QColor(theme.FOCUS), 1, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawLine(QPointF(column.left() + 1, top), QPointF(column.left() + 1, bottom))
            painter.drawLine(QPointF(column.right() - 1, top), QPointF(column.right() - 1, bottom))

    @staticmethod
    def _tag(painter: QPainter, x: float, rect: QRect, text: str, small: QFont, small_fm: QFontMetrics,
             line: QPen) -> None:
        """A branch's line with a muted word on it ('identity', '+3 more')."""
        painter.setPen(line)
        painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom() + 1))
        painter.setFont(small)
        width = small_fm.horizontalAdvance(text) + 8
        tag = QRectF(x - width / 2, rect.top() + 4, width, rect.height() - 8)
        painter.fillRect(tag, QColor(_PANEL))
        painter.setPen(QColor(theme.MUTED))
        painter.drawText(tag, int(Qt.AlignmentFlag.AlignCenter), text)

    def _box(self, painter: QPainter, box: QRectF, layer: LayerSpec, info, selected: bool, font: QFont,
             small: QFont) -> None:
        """One layer: its category colour at the left, its id, its output shape (or 'error')."""
        error = info is not None and info.error is not None
        painter.setPen(QPen(QColor(theme.ERROR if error else theme.FOCUS if selected else theme.FRAME), 1))
        painter.setBrush(QColor(theme.ERROR_BACKGROUND if error else theme.ROW_SELECTED if selected else _BOX))
        painter.drawRoundedRect(box, 3, 3)
        painter.fillRect(QRectF(box.left() + 1, box.top() + 1, 3, box.height() - 2), icons.category_color(layer.type))
        inner = box.adjusted(7, 0, -4, 0)
        shape = "error" if error else fmt(info.out_shape) if info is not None and info.out_shape else ""
        fm, small_fm = QFontMetrics(font), QFontMetrics(small)
        shape_width = small_fm.horizontalAdvance(shape) if shape else 0
        room = inner.width() - shape_width - 6
        if room < fm.horizontalAdvance("conv") and shape:  # narrow: the id wins, the tooltip has the shape
            shape, room = "", inner.width()
        painter.setFont(font)
        painter.setPen(QColor(theme.TEXT))
        painter.drawText(inner, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         fm.elidedText(layer.id, Qt.TextElideMode.ElideRight, int(room)))
        if shape:
            painter.setFont(small)
            painter.setPen(QColor(theme.ERROR if error else theme.MUTED_TEXT))
            painter.drawText(inner, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), shape)
