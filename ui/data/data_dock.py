"""The Data dock: the project's data before training (issue 15 §1).

Across the top, the first problem the scan found (a corrupt image by path, an empty or
one-example class, a CSV's missing cell by line and column, the reader's own refusal) in a
banner, the scan's progress, and Rescan. Below, three panes side by side: the samples
(``browser_grid.SampleBrowser``: paged, filtered by split and class; table rows for tables),
the class balance (``browser_summary.BalanceChart``; a bar click filters the samples to its
class), and the split sizes with the training split's mean / std (``browser_summary.StatsPanel``)
whose "Use for normalisation" sets data.mean and data.std as one undoable edit (``UseStatistics``).

The scan (``workbench.data.scan.scan``) and every page of samples run on workers
(``ui.common.workers``); progress comes back through ``ScanProgress``'s queued signal. A scan
starts when the dock first comes forward and again (the old one cancelled) after any data
setting changes (the settings form's ``changed``, undo included) or a project replaces the
open one. Results are cached by the files' mtimes: in memory, and under
``<project>.runs/data-scan`` once the project is saved (an unsaved project: memory only).
"""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QSplitter, QToolButton, QVBoxLayout, QWidget)

from workbench.data import scan
from workbench.data.scan import ScanCancelled, ScanResult
from workbench.errors import WorkbenchError

from ui.common import theme
from ui.common.workers import Worker, start_worker
from ui.data.browser_grid import SampleBrowser
from ui.data.browser_summary import BalanceChart, StatsPanel
from ui.document.commands import SetValue

RESCAN_DELAY_MS = 300  # settings edits that come in a burst start one scan


class ScanProgress(QObject):
    """Progress from the scan's thread; the signal is queued to the UI thread."""

    moved = Signal(int, int, str)

    def __init__(self):
        super().__init__()
        self.stop = False

    def __call__(self, done: int, total: int, text: str) -> None:
        self.moved.emit(done, total, text)

    def cancelled(self) -> bool:
        return self.stop


class UseStatistics(SetValue):
    """Set data.mean and data.std together (one undo step); ``show()`` updates what shows them."""

    ID = 81

    def __init__(self, project, new: tuple, show):
        self.project, self.show = project, show
        super().__init__(("data", "normalisation"), (project.data.mean, project.data.std), new)

    def label(self) -> str:
        return "Use the data's mean and std for normalisation" if self.new[0] is not None \
            else "Clear data.mean and data.std"

    def mergeWith(self, other) -> bool:
        return False

    def apply(self, value) -> None:
        self.project.set_setting("data.mean", value[0])
        self.project.set_setting("data.std", value[1])
        self.show()


class DataDock(QWidget):
    """Samples, class balance, statistics and problems of the open project's data."""

    scanned = Signal(object)  # the ScanResult shown now

    def __init__(self, window):
        super().__init__()
        self.window_ = window
        self.doc = window.doc
        self.result: ScanResult | None = None
        self.worker: Worker | None = None
        self.page_worker: Worker | None = None
        self.relay: ScanProgress | None = None
        self.old_workers: list[Worker] = []  # cancelled scans still ending
        self.stale = True
        self.on_screen = False
        self.scans = 0  # scans started (tests)

        self.banner = QLabel(objectName="dataProblem")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setMaximumHeight(self.banner.fontMetrics().lineSpacing() * 2 + 10)
        self.banner.setVisible(False)
        self.status = QLabel(objectName="dataStatus")
        self.status.setMinimumWidth(40)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.rescan_button = QToolButton(text="Rescan")
        self.rescan_button.setToolTip("Scan the data again (unchanged files answer from the cache)")
        self.browser = SampleBrowser()
        self.chart = BalanceChart()
        self.stats = StatsPanel()

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.status, 1)
        top.addWidget(self.progress)
        top.addWidget(self.rescan_button)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.browser)
        self.splitter.addWidget(self.chart)
        self.splitter.addWidget(self.stats)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([5000, 3000, 2000])  # in proportion: the samples get half
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.banner)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)

        self.timer = QTimer(self, singleShot=True, interval=RESCAN_DELAY_MS)
        self.timer.timeout.connect(self.scan_now)
        self.rescan_button.clicked.connect(self.scan_now)
        self.browser.pageWanted.connect(self._read_page)
        self.chart.classClicked.connect(self.browser.set_class)
        self.stats.useClicked.connect(self.use_statistics)
        self.doc.reset.connect(self.data_changed)

    # ------------------------------------------------------------ when to scan
    def set_on_screen(self, visible: bool) -> None:
        """The dock's tab came forward or went away: a stale scan starts when it shows."""
        self.on_screen = visible
        if visible and self.stale:
            self.timer.start()

    def setting_changed(self, section: str, name: str) -> None:
        if section == "data":
            self.data_changed()

    def data_changed(self) -> None:
        """The data settings or the project changed: scan again (now if the dock shows, else when it does)."""
        self.stale = True
        if self.on_screen:
            self.timer.start()
        else:
            self._show_stats()

    def scan_now(self) -> None:
        """Start a scan of the project's data as it is now (a running one is cancelled)."""
        self.timer.stop()
        self._cancel()
        self.stale = False
        self.scans += 1
        settings = self.doc.project.data
        relay = self.relay = ScanProgress()
        relay.moved.connect(self._moved)
        self.status.setText("Scanning the data…")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.worker = start_worker(scan.scan, settings, progress=relay, cancelled=relay.cancelled,
                                   cache_dir=self.cache_dir(), name="data-scan",
                                   returned=self._scanned, errored=self._failed,
                                   finished=lambda: self._ended(relay))

    def cache_dir(self) -> Path | None:
        """``<project>.runs/data-scan`` for a saved project; None (memory only) for an unsaved one."""
        project = self.doc.project
        return project.run_folder() / "data-scan" if project.path is not None else None

    def _cancel(self) -> None:
        if self.relay is not None:
            self.relay.stop = True
        if self.worker is not None:
            self.worker.quit()
            self.old_workers.append(self.worker)  # awaited at shutdown; it stops at its next check
            self.worker = None

    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Block until the scan and the page being read are in (tests, the screenshot script)."""
        ok = True
        for w in (self.worker, self.page_worker):
            if w is not None:
                ok = w.wait(timeout_s) and ok
        return ok

    def shutdown(self) -> None:
        """Stop the scan and the page being read, and await their threads (the window closes)."""
        self.timer.stop()
        workers = [w for w in (self.worker, self.page_worker, *self.old_workers) if w is not None]
        self._cancel()
        for w in workers:
            w.quit()
            w.wait()

    # ------------------------------------------------------------ answers
    def _moved(self, done: int, total: int, text: str) -> None:
        if self.relay is not self.sender():
            return
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.status.setText(text[:1].upper() + text[1:] + "…" if done < total or not total else text)

    def _scanned(self, result: ScanResult) -> None:
        self.result = result
        took = "from the cache" if result.cached else f"in {result.seconds:.1f} s"
        self.status.setText(f"{result.description} · scanned {took}")
        self.status.setToolTip(self.status.text())
        self._show_problem(result)
        self.browser.set_result(result)
        self.chart.set_result(result)
        self._show_stats()
        self.scanned.emit(result)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, ScanCancelled):
            return
        text = str(exc) if isinstance(exc, WorkbenchError) else f"the scan failed: {type(exc).__name__}: {exc}"
        self.status.setText("The data could not be scanned")
        self._set_banner(text, "error")

    def _ended(self, relay: ScanProgress) -> None:
        self.old_workers = [w for w in self.old_workers if w.is_running()]
        if relay is self.relay:
            self.progress.setVisible(False)
            self.worker = None

    def _show_problem(self, result: ScanResult) -> None:
        first = result.first_problem
        if first is None:
            self._set_banner("", "")
            return
        more = len(result.findings) - 1 + sum(max(0, n - scan.MAX_LISTED) for n in result.counted.values())
        self._set_banner(first.message + (f" (and {more} more problem{'s' * (more > 1)})" if more else ""),
                         first.severity, "\n".join(f.message for f in result.findings[:20]))

    def _set_banner(self, text: str, severity: str, details: str = "") -> None:
        self.banner.setVisible(bool(text))
        colour, background = (theme.BAD, theme.ERROR_BACKGROUND) if severity == "error" else (theme.WARNING, "#fef3c7")
        self.banner.setStyleSheet(f"QLabel#dataProblem {{ color: {colour}; background: {background}; "
                                  f"border: 1px solid {colour}; border-radius: 3px; padding: 2px 4px; }}")
        word = "Problem" if severity == "error" else "Note"
        self.banner.setText(f"<b>{word}:</b> {html.escape(text)}" if text else "")
        self.banner.setToolTip(details or text)

    def problem_text(self) -> str:
        """The banner as it reads (empty when there is no problem)."""
        return self.banner.text() if self.banner.isVisible() or not self.banner.isHidden() else ""

    def _show_stats(self) -> None:
        data = self.doc.project.data
        self.stats.set_result(self.result, data.mean, data.std)

    # ------------------------------------------------------------ pages of samples
    def _read_page(self, positions: list[int]) -> None:
        if self.result is None:
            return
        if self.page_worker is not None and self.page_worker.is_running():
            self.page_worker.quit()
            self.old_workers.append(self.page_worker)  # awaited at shutdown
        result = self.result
        self.page_worker = start_worker(scan.samples, self.doc.project.data, positions, result, name="data-page",
                                        returned=lambda samples, r=result: self._page_read(r, samples),
                                        errored=self._page_failed)

    def _page_read(self, result: ScanResult, samples) -> None:
        self.old_workers = [w for w in self.old_workers if w.is_running()]
        if result is self.result:
            self.browser.show_samples(samples)

    def _page_failed(self, exc: BaseException) -> None:
        self.status.setText(f"Samples could not be read: {exc}" if isinstance(exc, WorkbenchError)
                            else f"Samples could not be read: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ normalisation
    def use_statistics(self) -> None:
        """Make the scan's mean and std the project's data.mean / data.std (one undo step)."""
        if self.result is None or not self.result.mean:
            return
        if self.doc.edit_lock:
            self.window_.say(f"The settings cannot change while {self.doc.edit_lock}; stop it first")
            return
        new = (list(self.result.mean), list(self.result.std))
        self.doc.undo_stack.push(UseStatistics(self.doc.project, new, self._normalisation_changed))

    def _normalisation_changed(self) -> None:
        form = getattr(getattr(getattr(self.window_, "training", None), "panel", None), "form", None)
        if form is not None:
            form.refresh()
        self._show_stats()


def install(window) -> DataDock:
    """Add the Data dock, tabbed with the Training dock (which stays in front); it rescans when
    a data setting changes and its workers end with the window."""
    dock = DataDock(window)
    frame = window.add_dock("Data", dock, Qt.DockWidgetArea.BottomDockWidgetArea)
    training = window.docks.get("Training")
    if training is not None:
        window.tabifyDockWidget(training, frame)
        training.raise_()
        window.training.panel.form.changed.connect(dock.setting_changed)
    frame.visibilityChanged.connect(dock.set_on_screen)
    window.add_shutdown_hook(dock.shutdown)
    return dock
