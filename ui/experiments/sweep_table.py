"""The Sweep dock's live trial table: one row per trial (number, state, each parameter, the
best validation metric, epochs, time), sortable by any column through a proxy that sorts by
the numbers, not their text.

``TrialTable.show(snapshot)`` takes each poll's ``sweep_study.Snapshot``: new trials are
inserted and changed ones repainted, so the selection and the sort stay put while a sweep runs;
a different set of parameters (another study) resets the model. The best complete trial is in
bold; a failed trial's error is its row's tooltip.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from ui.common import theme
from ui.experiments.sweep_study import Snapshot, TrialRow

SORT = Qt.ItemDataRole.UserRole + 1
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
STATE_COLORS = {"FAIL": theme.BAD, "PRUNED": theme.MUTED_TEXT, "RUNNING": theme.FOCUS}


def short_path(path: str) -> str:
    """A column title: the setting's or argument's last two names ('optimizer.lr')."""
    parts = path.split(".")
    return ".".join(parts[-2:])


def format_number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


class TrialModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[TrialRow] = []
        self.paths: list[str] = []
        self.metric = "val_acc"
        self.best: int | None = None

    # ------------------------------------------------------------ columns
    def headers(self) -> list[str]:
        return ["#", "State", *[short_path(p) for p in self.paths], f"Best {self.metric}", "Epochs", "Time"]

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.paths) + 5

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return self.headers()[section]
            if role == Qt.ItemDataRole.ToolTipRole and 2 <= section < 2 + len(self.paths):
                return self.paths[section - 2]
        return None

    def _value(self, row: TrialRow, column: int):
        n = len(self.paths)
        if column == 0:
            return row.number
        if column == 1:
            return row.state
        if column < 2 + n:
            return row.params.get(self.paths[column - 2])
        return (row.value, row.epochs_done, row.seconds)[column - 2 - n]

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, column = self.rows[index.row()], index.column()
        value = self._value(row, column)
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return "" if column != 2 + len(self.paths) else "–"
            if column == 1:
                return STATES.get(value, value.lower())
            if column == self.columnCount() - 1:
                return f"{value:.1f} s"
            return format_number(value)
        if role == SORT:
            if column == 1:
                return list(STATES).index(value) if value in STATES else 9
            if value is None:
                return float("-inf")
            return value if isinstance(value, (int, float)) else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and column != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and row.number == self.best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and column == 1 and row.state in STATE_COLORS:
            return QColor(STATE_COLORS[row.state])
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.error:
                return f"Trial {row.number} failed: {row.error}"
            if row.number == self.best:
                return f"Trial {row.number}: the best so far"
        return None

    # ------------------------------------------------------------ updates
    def show(self, snapshot: Snapshot) -> None:
        if snapshot.paths != self.paths or snapshot.metric != self.metric or \
                [r.number for r in snapshot.trials[:len(self.rows)]] != [r.number for r in self.rows]:
            self.beginResetModel()
            self.rows, self.paths, self.metric, self.best = list(snapshot.trials), list(snapshot.paths), \
                snapshot.metric, snapshot.best
            self.endResetModel()
            return
        old, self.rows = self.rows, list(self.rows)
        best_changed = snapshot.best != self.best
        self.best = snapshot.best
        last = self.columnCount() - 1
        for i, (was, now) in enumerate(zip(old, snapshot.trials)):
            if was != now or best_changed:
                self.rows[i] = now
                self.dataChanged.emit(self.index(i, 0), self.index(i, last))
        new = snapshot.trials[len(old):]
        if new:
            self.beginInsertRows(QModelIndex(), len(old), len(old) + len(new) - 1)
            self.rows.extend(new)
            self.endInsertRows()

    def trial_at(self, row: int) -> TrialRow:
        return self.rows[row]


class TrialTable(QTableView):
    """The table view: sortable, whole rows selected, columns sized to their contents."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("sweepTrials")
        self.trials = TrialModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.trials)
        self.proxy.setSortRole(SORT)
        self.proxy.setDynamicSortFilter(True)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.trials.show(snapshot)

    def selected_trial(self) -> TrialRow | None:
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        return self.trials.trial_at(self.proxy.mapToSource(rows[0]).row())

    def shown(self) -> list[list[str]]:
        """What the table shows, row by row in the view's order (tests, screenshots)."""
        model = self.proxy
        return [[model.index(r, c).data() or "" for c in range(model.columnCount())] for r in range(model.rowCount())]
