"""Projects in the window: title and modified mark, Save / Save As / Open / New, recent
files and geometry in (isolated) settings, unsaved-changes questions, load errors that
leave the open project alone, the launcher's file argument, and File > Export."""
from __future__ import annotations

import json
import sys
import types

import pytest

from workbench.project import project_file as projects
from workbench.project import templates
from workbench.errors import SpecError

from ui import project_io
from ui.main_window import MainWindow
from window_helpers import ids_of


def saved_copy(tmp_path, name="digits.wbproj", template="digits_cnn"):
    path = tmp_path / name
    projects.save(templates.load(template), path)
    return path


def test_title_names_the_file_and_marks_changes(window, tmp_path, monkeypatch):
    assert window.windowTitle().startswith("Digits CNN (not saved)[*]")
    assert not window.isWindowModified()
    window.doc.insert_kind("ReLU")
    assert window.isWindowModified()
    target = tmp_path / "mine.wbproj"
    monkeypatch.setattr(project_io, "choose_save_path", lambda parent, suggestion: str(target))
    assert window.save()  # no file yet: Save asks where (Save As)
    assert window.windowTitle().startswith("mine.wbproj[*]") and not window.isWindowModified()
    assert projects.load(target).model.to_json() == window.doc.spec.to_json()
    assert project_io.recent_files()[0] == str(target.resolve())
    window.doc.undo_stack.undo()  # back before the save point: modified again
    assert window.isWindowModified()


def test_open_replaces_the_project_and_starts_a_fresh_history(window, tmp_path, monkeypatch):
    path = saved_copy(tmp_path, template="digits_mlp")
    monkeypatch.setattr(project_io, "choose_open_path", lambda parent, folder: str(path))
    window.open_file()
    assert window.doc.path == path and window.doc.project.name == templates.load("digits_mlp").name
    assert window.doc.undo_stack.count() == 0 and window.windowTitle().startswith("digits.wbproj")
    assert window.stack.stack_model.rowCount() == len(window.doc.spec.layers)
    assert window.inspector.layer is None


def test_a_broken_file_shows_every_problem_and_changes_nothing(window, tmp_path):
    bad = tmp_path / "bad.wbproj"
    data = templates.load("digits_cnn").to_json()
    data["model"]["layers"][0]["type"] = "Conv2D"
    data["model"]["layers"][1]["args"] = {"momentum": 7}
    bad.write_text(json.dumps(data))
    window.doc.insert_kind("ReLU")
    before = window.doc.spec.to_json()
    window.doc.undo_stack.setClean()  # nothing to ask about
    assert not window.open_file(str(bad))
    (error,) = window.load_errors
    assert isinstance(error, SpecError) and len(error.problems) == 2
    assert "did you mean 'Conv2d'" in str(error) and "momentum" in str(error)
    assert window.doc.spec.to_json() == before and window.doc.path is None
    assert window.doc.undo_stack.count() == 1  # the history survived too


@pytest.mark.parametrize("answer, opened, saved", [("cancel", False, False), ("discard", True, False),
                                                   ("save", True, True)])
def test_unsaved_changes_are_asked_about_before_open(window, tmp_path, monkeypatch, answer, opened, saved):
    other = saved_copy(tmp_path, "other.wbproj", "digits_mlp")
    mine = tmp_path / "mine.wbproj"
    monkeypatch.setattr(project_io, "choose_save_path", lambda parent, suggestion: str(mine))
    asked = []
    monkeypatch.setattr(project_io, "ask_unsaved", lambda parent, name: asked.append(name) or answer)
    window.doc.insert_kind("ReLU")
    assert window.open_file(str(other)) is opened
    assert asked == ["Digits CNN"]
    assert (window.doc.path == other) is opened
    assert mine.exists() is saved
    if saved:
        assert "relu_1" in ids_of(projects.load(mine).model)


def test_closing_with_changes_can_be_cancelled(window, monkeypatch):
    monkeypatch.setattr(project_io, "ask_unsaved", lambda parent, name: "cancel")
    window.doc.insert_kind("ReLU")
    assert not window.close() and window.isVisible()
    monkeypatch.setattr(project_io, "ask_unsaved", lambda parent, name: "discard")
    assert window.close()


def test_a_close_check_can_veto_closing(window):
    refuse = [True]
    window.add_close_check(lambda: not refuse[0])
    assert not window.close() and window.isVisible()
    refuse[0] = False
    assert window.close()


def test_new_from_a_template(window, monkeypatch):
    monkeypatch.setattr(project_io, "choose_template", lambda parent: "tabular_mlp")
    window.new_project()
    assert window.doc.project.name == templates.load("tabular_mlp").name and window.doc.path is None


def test_the_template_chooser_lists_every_template(qtbot):
    dialog = project_io.TemplateDialog()
    qtbot.addWidget(dialog)
    assert dialog.list.count() == len(templates.names()) and dialog.chosen() == templates.names()[0]


def test_launch_with_a_file_then_without_reopens_the_last(qtbot, isolated_settings, tmp_path):
    path = saved_copy(tmp_path, template="digits_mlp")
    first = MainWindow(str(path))
    qtbot.addWidget(first)
    assert first.doc.path == path
    first.close()
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.doc.path == path.resolve()


def test_launch_with_a_missing_file_opens_the_template_and_says_why(qtbot, isolated_settings, tmp_path):
    w = MainWindow(str(tmp_path / "nope.wbproj"))
    qtbot.addWidget(w)
    assert w.doc.project.name == "Digits CNN"
    qtbot.waitUntil(lambda: len(isolated_settings) == 1)
    assert "no such file" in str(isolated_settings[0])


def test_recent_files_keep_order_without_duplicates_and_drop_missing(isolated_settings, tmp_path, qapp):
    a, b = saved_copy(tmp_path, "a.wbproj"), saved_copy(tmp_path, "b.wbproj")
    project_io.add_recent(a)
    project_io.add_recent(b)
    project_io.add_recent(a)
    assert project_io.recent_files() == [str(a.resolve()), str(b.resolve())]
    a.unlink()
    project, problem = project_io.startup_project(None)
    assert project.name == "Digits CNN" and problem is None
    assert project_io.recent_files() == [str(b.resolve())]


def test_geometry_is_saved_in_the_test_settings_not_the_users(window, qtbot, tmp_path):
    window.resize(760, 500)  # small: the offscreen screen is 800x600
    size = (window.width(), window.height())
    window.close()
    assert (tmp_path / "settings.ini").exists()
    again = MainWindow(project=templates.load("digits_cnn"))
    qtbot.addWidget(again)
    assert (again.width(), again.height()) == size and size[1] == 500


def test_file_export_opens_the_export_dialog_on_the_project(window, monkeypatch):
    from ui.export.dialog import ExportDialog

    shown = []
    monkeypatch.setattr(ExportDialog, "exec", lambda self: shown.append(self) or 0)
    window.actions_["export"].trigger()
    dialog = shown[0]
    assert dialog.windowTitle() == "Export Digits CNN" and dialog.parent() is window
    assert dialog.project is window.doc.project
    assert [name for name, _ in dialog.model.named_children()] == ids_of(window.doc.spec)
    assert dialog.export_button.isEnabled() and dialog.export_button.text().startswith("Export ")


def test_export_hands_the_project_and_a_built_model_to_the_dialog(window, monkeypatch):
    seen = []

    class FakeDialog:
        weightsLoaded = types.SimpleNamespace(connect=lambda slot: None)

        def __init__(self, project, model, parent):
            seen.append((project, model, parent))

        def exec(self):
            return 0

    monkeypatch.setitem(sys.modules, "ui.export.dialog", types.SimpleNamespace(ExportDialog=FakeDialog))
    window.export_model()
    project, model, parent = seen[0]
    assert project is window.doc.project and parent is window
    assert [name for name, _ in model.named_children()] == ids_of(window.doc.spec)


def test_open_recent_menu_reopens_a_saved_project(window, tmp_path):
    path = saved_copy(tmp_path, template="digits_mlp")
    project_io.add_recent(path)
    window.recent_menu.aboutToShow.emit()
    first = window.recent_menu.actions()[0]
    assert first.text() == "&1 digits.wbproj" and first.isEnabled()
    first.trigger()
    assert window.doc.path == path.resolve() or window.doc.path == path
    path.unlink()
    window.recent_menu.aboutToShow.emit()
    assert window.recent_menu.actions()[0].text().endswith("(missing)")
    assert not window.recent_menu.actions()[0].isEnabled()
