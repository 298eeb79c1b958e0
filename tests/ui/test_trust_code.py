"""The window asks once per file before a project runs the user's code (Custom layers, a custom
Dataset): Trust opens it and remembers the file, Cancel leaves the open project as it was and
runs nothing; an edited file is asked about again."""
from __future__ import annotations

import pytest
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from workbench import user_code
from workbench.project import templates

from tests.core.user_code_files import custom_data_project, custom_layer_project
from ui import project_io
from ui.common.trust_dialog import TrustDialog
from window_helpers import shown_rows


@pytest.fixture(autouse=True)
def _own_trust_store(tmp_path, monkeypatch):
    monkeypatch.setenv(user_code.TRUST_FILE_ENV, str(tmp_path / "config" / "trusted.json"))


def _answer(monkeypatch, answer: bool) -> list:
    asked: list = []
    monkeypatch.setattr(project_io, "ask_trust", lambda parent, files, name="": asked.append(list(files)) or answer)
    return asked


def test_cancel_leaves_the_open_project_and_runs_nothing(window, tmp_path, monkeypatch):
    path = custom_layer_project(tmp_path)
    asked = _answer(monkeypatch, False)
    before = window.doc.project.name
    assert not window.open_file(str(path))
    assert asked == [[(tmp_path / "blocks.py").resolve()]]
    assert window.doc.project.name == before and window.doc.path is None
    assert not (tmp_path / "IMPORTED").exists()  # nothing imported the file
    assert "runs code you did not trust" in window.statusBar().currentMessage()
    assert not user_code.trusted(tmp_path / "blocks.py")


def test_trust_opens_the_project_once_per_file_and_an_edited_file_asks_again(window, tmp_path, monkeypatch, qtbot):
    path = custom_layer_project(tmp_path)
    asked = _answer(monkeypatch, True)
    assert window.open_file(str(path))
    assert asked == [[(tmp_path / "blocks.py").resolve()]]
    assert user_code.trusted(tmp_path / "blocks.py")
    qtbot.waitUntil(lambda: shown_rows(window.stack_model)[0][3] == "(4, 8, 8)", timeout=10000)
    assert (tmp_path / "IMPORTED").exists()
    window.doc.undo_stack.setClean()
    assert window.open_file(str(path))
    assert len(asked) == 1  # the same file, unchanged: not asked again
    (tmp_path / "blocks.py").write_text((tmp_path / "blocks.py").read_text() + "\n# edited\n")
    assert window.open_file(str(path))
    assert len(asked) == 2


def test_a_custom_dataset_file_is_asked_about_too(window, tmp_path, monkeypatch):
    path = custom_data_project(tmp_path)
    asked = _answer(monkeypatch, False)
    assert not window.open_file(str(path))
    assert asked == [[(tmp_path / "squares.py").resolve()]]


def test_a_launch_with_an_untrusted_project_opens_nothing_of_it(tmp_path, monkeypatch, isolated_settings):
    path = custom_layer_project(tmp_path)
    _answer(monkeypatch, False)
    project, problem = project_io.startup_project(str(path))
    assert project.name == templates.load(project_io.DEFAULT_TEMPLATE).name
    assert isinstance(problem, user_code.UntrustedCode) and "it was not opened" in str(problem)
    assert not (tmp_path / "IMPORTED").exists()


def test_the_dialog_lists_each_file_with_its_path_and_cancel_is_the_default(qtbot, tmp_path):
    files = [tmp_path / "a.py", tmp_path / "b.py"]
    dialog = TrustDialog(files, "Mine")
    qtbot.addWidget(dialog)
    assert [dialog.files.item(i).text() for i in range(dialog.files.count())] == [str(f) for f in files]
    assert dialog.cancel_button.isDefault() and not dialog.trust_button.isDefault()
    dialog.show()
    dialog.cancel_button.click()
    assert dialog.result() == QDialog.DialogCode.Rejected
    dialog = TrustDialog(files, "Mine")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.trust_button.click()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert isinstance(dialog.findChild(QDialogButtonBox), QDialogButtonBox)


def test_the_export_dialog_offers_copy_or_import_for_custom_layers(qtbot, tmp_path):
    from workbench.project import project_file

    from ui.export.dialog import ExportDialog

    project = project_file.load(custom_layer_project(tmp_path))
    user_code.grant([tmp_path / "blocks.py"])  # the window trusted it when it opened the project
    dialog = ExportDialog(project, None)
    qtbot.addWidget(dialog)
    assert dialog.options().custom_code == "copy"
    dialog.custom_code.setCurrentIndex(dialog.custom_code.findData("import"))
    assert dialog.options().custom_code == "import"
    plain = ExportDialog(templates.load("digits_cnn"), None)
    qtbot.addWidget(plain)
    assert not plain.custom_code.isVisibleTo(plain)  # only a model with Custom layers is asked
    user_code.revoke_grants()
