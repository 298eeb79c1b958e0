"""Project files in the window: settings (recent files, the start page at launch), where
file dialogs start, the project a launch opens, and the dialogs New / Open / Save / Rename and
the unsaved-changes prompt use.

Every question the window asks goes through a function here (``ask_unsaved``,
``choose_open_path``, ``ask_trust``, ...), so tests replace one function instead of clicking a
modal box.

A project that runs the user's Python files (Custom layers, a custom Dataset) opens through
``load_project``: files not trusted yet (or changed since) are listed in one question
(ui.common.trust_dialog); Trust records them in the trust store (workbench.user_code), Cancel
leaves the project closed (``NOT_TRUSTED``). Nothing of those files runs before the answer.
Settings live in ``QSettings``; ``WORKBENCH_SETTINGS`` (an .ini path) redirects them, which
tests and the screenshot script use so that they never touch a user's settings.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QInputDialog, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QMessageBox, QVBoxLayout, QWidget)

from workbench import user_code
from workbench.project import code_refs, project_file as projects
from workbench.project import templates
from workbench.errors import SpecError, WorkbenchError

from ui.common import trust_dialog

MAX_RECENT = 8
FILE_FILTER = "Model Workbench projects (*.wbproj);;All files (*)"
DEFAULT_TEMPLATE = "digits_cnn"
START_PAGE_KEY = "start_page/at_launch"
EMPTY = ":empty:"  # what choose_template returns for File > New's empty project (never a template's name)


def settings() -> QSettings:
    path = os.environ.get("WORKBENCH_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("Model Workbench", "Model Workbench")


def recent_files(store: QSettings | None = None) -> list[str]:
    store = store or settings()
    value = store.value("recent_files", [])
    if isinstance(value, str):  # QSettings returns a lone entry as a string
        value = [value]
    return [str(v) for v in value or []]


def add_recent(path: Path | str, store: QSettings | None = None) -> list[str]:
    store = store or settings()
    path = str(Path(path).resolve())
    files = [path] + [f for f in recent_files(store) if f != path]
    store.setValue("recent_files", files[:MAX_RECENT])
    store.sync()
    return files[:MAX_RECENT]


def start_folder(project_path: Path | None, store: QSettings | None = None) -> Path:
    """Where Open and Save As start: the open project's folder, else the folder of the project
    last opened or saved (the first recent file), else the home folder."""
    if project_path is not None:
        return Path(project_path).parent
    for path in recent_files(store)[:1]:
        if Path(path).parent.is_dir():
            return Path(path).parent
    return Path.home()


def short_folder(path: str | Path) -> str:
    """A file's folder as a menu shows it: the home folder as ~ ('~/projects/a')."""
    folder, home = Path(path).parent, Path.home()
    try:
        return str(Path("~") / folder.relative_to(home)) if folder != home else "~"
    except ValueError:
        return str(folder)


def recent_labels(files: list[str]) -> list[str]:
    """The Open Recent entries: each file's name, with its folder where two share a name."""
    names = [Path(f).name for f in files]
    return [f"{name} \u2014 {short_folder(f)}" if names.count(name) > 1 else name for name, f in zip(names, files)]


def forget_recent(path: str, store: QSettings | None = None) -> None:
    store = store or settings()
    store.setValue("recent_files", [f for f in recent_files(store) if f != path])
    store.sync()


def start_page_at_launch(store: QSettings | None = None) -> bool:
    """The start page's "Show this page at launch" box (off by default: the window opens on
    a ready project)."""
    value = (store or settings()).value(START_PAGE_KEY, False)
    return value is True or str(value).lower() == "true"


def set_start_page_at_launch(on: bool, store: QSettings | None = None) -> None:
    store = store or settings()
    store.setValue(START_PAGE_KEY, bool(on))
    store.sync()


def launch_on_start_page(argv_path: str | None) -> bool:
    """A launch without a file shows the start page only when the person asked for it."""
    return not argv_path and start_page_at_launch()


def launch_problem(exc: WorkbenchError) -> str:
    """The start page's line for the file that failed at launch ("Could not open x.wbproj: no
    such file"); the message box lists every problem."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    more = len(exc.problems) - 1 if isinstance(exc, SpecError) else 0
    return f"Could not open {lines[0]}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")


NOT_TRUSTED = "it was not opened: open it again and choose Trust to run its code"


def load_project(path: str | Path, parent: QWidget | None = None) -> projects.Project:
    """A project file, after asking once about the Python files it runs that are not trusted yet.
    Raises WorkbenchError for a bad file, ``user_code.UntrustedCode`` when the user cancels."""
    project = projects.load(path)
    files = user_code.untrusted(code_refs.files(project))
    if files:
        if not ask_trust(parent, files, project.name):
            raise user_code.UntrustedCode(files, NOT_TRUSTED)
        user_code.trust(files)
    return project


def startup_project(argv_path: str | None) -> tuple[projects.Project, WorkbenchError | None]:
    """The project the window opens with: the given file, else the last one, else the
    digits_cnn template. Returns it and the error to show when the given file failed (or its
    code was not trusted)."""
    if argv_path:
        try:
            project = load_project(argv_path)
        except WorkbenchError as exc:
            return templates.load(DEFAULT_TEMPLATE), exc
        add_recent(argv_path)
        return project, None
    for path in recent_files()[:1]:
        try:
            return load_project(path), None
        except user_code.UntrustedCode as exc:
            return templates.load(DEFAULT_TEMPLATE), exc
        except WorkbenchError:
            forget_recent(path)
    return templates.load(DEFAULT_TEMPLATE), None


# ---------------------------------------------------------------- questions (tests replace these)

def ask_unsaved(parent: QWidget, name: str) -> str:
    """'save', 'discard' or 'cancel'."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                      f"{name} has changes that are not saved.", parent=parent)
    box.setInformativeText("Save them before continuing?")
    box.setStandardButtons(QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                           | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    # keys: S saves, D discards (also with Alt), Esc cancels; the platform's texts have no mnemonics
    box.button(QMessageBox.StandardButton.Save).setText("&Save")
    box.button(QMessageBox.StandardButton.Discard).setText("&Discard")
    answer = box.exec()
    return {QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard"}.get(QMessageBox.StandardButton(answer), "cancel")


def ask_trust(parent: QWidget | None, files: list[Path], project: str = "") -> bool:
    """Whether the user trusts the Python files a project runs (Trust / Cancel)."""
    return trust_dialog.ask_trust(parent, files, project)


def choose_open_path(parent: QWidget, folder: str) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open project", folder, FILE_FILTER)
    return path or None


def choose_save_path(parent: QWidget, suggestion: str) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Save project as", suggestion, FILE_FILTER)
    if path and not path.endswith(projects.SUFFIX) and "." not in Path(path).name:
        path += projects.SUFFIX
    return path or None


def choose_template(parent: QWidget) -> str | None:
    """A template's name, EMPTY for an empty project, None when cancelled."""
    return TemplateDialog.pick(parent)


def ask_project_name(parent: QWidget, current: str) -> str | None:
    """File > Rename Project: the new name, or None when cancelled."""
    name, ok = QInputDialog.getText(parent, "Rename project", "Project name:", QLineEdit.EchoMode.Normal, current)
    return name if ok else None


KEPT_AS_IT_WAS = "The open project was left as it was."


def show_error(parent: QWidget, title: str, exc: Exception, outcome: str = KEPT_AS_IT_WAS) -> None:
    """A failed load or save: the loader's messages, every problem listed, then what became of
    the window's project (``outcome``)."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, "", parent=parent)
    if isinstance(exc, SpecError):
        where = f"{exc.source}\n" if exc.source else ""
        lines = [str(p) for p in exc.problems]
        shown = lines[:12] + ([f"... and {len(lines) - 12} more (see details)"] if len(lines) > 12 else [])
        box.setText(f"{where}has {len(lines)} problem{'s' if len(lines) != 1 else ''}:")
        box.setInformativeText("\n".join(shown) + "\n\n" + outcome)
        box.setDetailedText("\n".join(lines))
    else:
        box.setText(str(exc))
        box.setInformativeText(outcome)
    box.exec()


class TemplateDialog(QDialog):
    """Pick a starter project for File > New, or start an empty one."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.list = QListWidget()
        for name in templates.names():
            try:
                proj = templates.load(name)
            except WorkbenchError:
                continue
            item = QListWidgetItem(f"{proj.name}\n{proj.description}")
            item.setData(256, name)
            item.setToolTip(proj.description)
            self.list.addItem(item)
        self.list.setWordWrap(True)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.empty_button = buttons.addButton("&Empty project", QDialogButtonBox.ButtonRole.ActionRole)
        self.empty_button.setObjectName("emptyProject")
        self.empty_button.setToolTip("No layers: set the input shape in the inspector, then add layers")
        self.empty_button.clicked.connect(self._choose_empty)
        self._empty = False
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Start from a template, or with an empty project:"))
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(520, 340)

    def _choose_empty(self) -> None:
        self._empty = True
        self.accept()

    def chosen(self) -> str | None:
        """The template's name, EMPTY for an empty project."""
        if self._empty:
            return EMPTY
        item = self.list.currentItem()
        return item.data(256) if item else None

    @classmethod
    def pick(cls, parent) -> str | None:
        dialog = cls(parent)
        return dialog.chosen() if dialog.exec() == QDialog.DialogCode.Accepted else None
