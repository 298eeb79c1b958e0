"""The "…" beside Validation in the training settings: the test split and separate files.

``SplitDialog(form)`` edits ``data.test_fraction`` (the share held out for the test metrics,
never trained or validated on), ``data.val_path`` and ``data.test_path`` (a separate validation
or test file or folder, read as ``data.path`` is; only for sources that read one). Each edit goes
through the form's ``set_value`` (one undoable step, checked as a project file is); the dialog
reads the project again after every change on the undo stack, so Undo shows here too.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QPushButton, \
    QVBoxLayout, QWidget

from workbench.project.settings import PATH_SOURCES, DataSettings, path_kind

from ui.editor.fields import make_field

NAMES = (("test_fraction", "Test share"), ("val_path", "Validation file"), ("test_path", "Test file"))


def choose_split_path(parent, source: str, start: str, title: str) -> str | None:
    """Ask for a file or folder like data.path's (tests replace this)."""
    _title, what, holds = path_kind(source)
    if what == "folder":
        path = QFileDialog.getExistingDirectory(parent, title, start)
    else:
        path, _ = QFileDialog.getOpenFileName(parent, title, start, f"{_title} ({holds});;All files (*)"
                                              if source != "csv" else "CSV files (*.csv *.tsv *.txt);;All files (*)")
    return path or None


class SplitDialog(QDialog):
    def __init__(self, form, parent: QWidget | None = None):
        super().__init__(parent or form)
        self.form = form
        self.setWindowTitle("Test split and separate files")
        params = {p.name: p for p in DataSettings.params()}
        self.fields = {}
        self.browse: dict[str, QPushButton] = {}
        layout = QFormLayout()
        for name, label in NAMES:
            field = make_field(params[name])
            field.widget.setObjectName(f"field_data_{name}")
            field.widget.setToolTip(params[name].help)
            field.edited.connect(lambda value, n=name: self.set(n, value))
            self.fields[name] = field
            widget = field.widget
            if name.endswith("_path"):
                button = QPushButton("Browse...", objectName=f"browse_{name}")
                button.clicked.connect(lambda _=False, n=name: self.pick(n))
                self.browse[name] = button
                holder = QWidget()
                line = QHBoxLayout(holder)
                line.setContentsMargins(0, 0, 0, 0)
                line.addWidget(widget, 1)
                line.addWidget(button)
                widget = holder
            layout.addRow(label, widget)
        self.note = QLabel(objectName="muted")
        self.note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        outer = QVBoxLayout(self)
        outer.addLayout(layout)
        outer.addWidget(self.note)
        outer.addWidget(buttons)
        self.setMinimumWidth(460)
        form.doc.undo_stack.indexChanged.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args) -> None:
        data = self.form.project.data
        for name, field in self.fields.items():
            field.show_value(getattr(data, name))
        files = data.source in PATH_SOURCES
        for name in ("val_path", "test_path"):
            self.fields[name].widget.setEnabled(files)
            self.browse[name].setEnabled(files)
        self.fields["test_fraction"].widget.setEnabled(not data.test_path)  # the file is the test part
        self.note.setText("The test part never trains or validates; its per-class metrics show in Evaluation > "
                          "Test metrics when a run ends. A validation file replaces the Validation share; a test "
                          "file replaces the Test share." + ("" if files else f" The {data.source} source reads no "
                                                             "file, so it takes no separate ones."))

    def pick(self, name: str) -> None:
        data = self.form.project.data
        current = getattr(data, name) or data.path or ""
        start = str(Path(current).expanduser().parent) if current else ""
        path = choose_split_path(self, data.source, start, f"Choose the {dict(NAMES)[name].lower()}")
        if path:
            self.set(name, path)

    def set(self, name: str, value) -> None:
        """Change one setting (one undo step); a test file replaces the test share, so choosing
        one sets the share to 0 in the same step (a project holds one or the other)."""
        data = self.form.project.data
        if name == "test_path" and isinstance(value, str) and value and data.test_fraction:
            stack = self.form.doc.undo_stack
            stack.beginMacro(f"Set data.test_path to {value}")
            self.form.set_value("data", "test_fraction", 0.0)
            self.form.set_value("data", "test_path", value)
            stack.endMacro()
            return
        self.form.set_value("data", name, value)

    def done(self, result: int) -> None:
        self.form.doc.undo_stack.indexChanged.disconnect(self.refresh)
        super().done(result)
