"""The question asked before a project runs a user's Python files (Custom layers, a custom
Dataset): each file with its full path, and Trust / Cancel, like an editor asking to trust a
folder. Trust records the files, with their content, in the trust store (``workbench.user_code``),
so the same files are not asked about again until they change."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QVBoxLayout, QWidget


class TrustDialog(QDialog):
    """Lists the files; ``exec()`` is Accepted for Trust, Rejected for Cancel."""

    def __init__(self, files: list[Path], project: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("trustDialog")
        self.setWindowTitle("Trust the project's code?")
        several = len(files) > 1
        what = f"The project {project!r}" if project else "This project"
        them, they = ("them", "they") if several else ("it", "it")
        intro = QLabel(f"{what} runs Python code from {'these files' if several else 'this file'}. Code can do "
                       "anything your account can: read, change or send your files.\n\n"
                       f"Trust {them} only if you wrote {them} or know where {they} came from. Nothing of "
                       f"{them} has run yet; Cancel leaves the project closed.")
        intro.setWordWrap(True)
        self.files = QListWidget()
        self.files.setObjectName("trustFiles")
        for f in files:
            self.files.addItem(str(f))
            self.files.item(self.files.count() - 1).setToolTip(str(f))
        self.files.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a list to read, not to pick from
        self.files.setMaximumHeight(self.files.sizeHintForRow(0) * min(len(files), 8) + 8 if files else 40)
        buttons = QDialogButtonBox()
        self.trust_button = buttons.addButton("&Trust and Open", QDialogButtonBox.ButtonRole.AcceptRole)
        self.trust_button.setObjectName("trustButton")
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setDefault(True)  # Enter does not run code
        self.cancel_button.setFocus()
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.files)
        layout.addStretch(1)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())


def ask_trust(parent: QWidget | None, files: list[Path], project: str = "") -> bool:
    """Whether the user trusts the files (the window's one question about code)."""
    return TrustDialog(files, project, parent).exec() == QDialog.DialogCode.Accepted
