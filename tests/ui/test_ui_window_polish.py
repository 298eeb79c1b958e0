"""The window as a user meets it (issue 13, problems 11, 12, 14, 15, 18): long status messages
keep their start, File > New offers an empty project, a project can be renamed, recent files
tell same-named files apart, file dialogs start in the project's folder, the data settings say
what to pick and offer the CSV's columns, the unsaved-changes box answers D, and Help has the
version, a shortcut sheet read from the actions and the README's usage."""
from __future__ import annotations

import json

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

import workbench
from workbench.project import project_file as projects
from workbench.project import templates

from ui import help_dialogs, project_io
from ui.project_io import ask_unsaved as real_ask_unsaved  # the fixture replaces the module's
from window_helpers import text_of


def saved_copy(folder, name="net.wbproj", template="digits_cnn"):
    folder.mkdir(parents=True, exist_ok=True)
    return projects.save(templates.load(template), folder / name)


# ---------------------------------------------------------------- problem 12: the status bar

def test_a_long_status_message_keeps_its_start_and_end(window, qtbot):
    path = "/home/user/" + "/".join(["very_long_folder_name"] * 13) + "/checkpoints/last.ckpt"
    assert len(path) >= 300
    text = f"Could not rename 'conv2d_1': {path} is not a valid id"
    window.resize(1024, 700)
    window.say(text)
    label = window.summary.message
    qtbot.waitUntil(lambda: label.width() > 50)
    shown = label.shown_text()
    assert shown.startswith("Could not rename"), shown  # the start is what says what happened
    assert shown.endswith("is not a valid id") and "…" in shown and len(shown) < len(text)
    assert label.toolTip() == text and label.text() == text  # all of it is one hover away
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    status_bar = window.statusBar()
    assert label.mapTo(window, label.rect().topRight()).x() <= status_bar.width()
    shapes = window.summary.shapes  # the message never squeezes the model's summary
    assert shapes.width() >= shapes.sizeHint().width()


# ---------------------------------------------------------------- problem 14: projects

def test_file_new_offers_an_empty_project(window, qtbot, monkeypatch):
    dialog = project_io.TemplateDialog(window)
    qtbot.addWidget(dialog)
    assert dialog.empty_button.text() == "&Empty project"
    dialog.empty_button.click()
    assert dialog.result() == dialog.DialogCode.Accepted and dialog.chosen() == project_io.EMPTY

    monkeypatch.setattr(project_io, "choose_template", lambda parent: project_io.EMPTY)
    window.new_project()
    assert window.doc.spec.layers == [] and window.doc.path is None
    assert window.doc.spec.input_shape == templates.EMPTY_INPUT
    assert window.stack_model.rowCount() == 0
    assert "no layers yet" in text_of(window.summary.status)
    assert window.windowTitle().startswith("Untitled (not saved)")
    assert "set the input shape" in window.summary.message.text()


def test_rename_the_project_undo_and_save(window, tmp_path, monkeypatch):
    path = saved_copy(tmp_path)
    assert window.open_file(str(path))
    monkeypatch.setattr(project_io, "ask_project_name", lambda parent, current: "  Digit   reader ")
    window.actions_["rename_project"].trigger()
    assert window.doc.project.name == "Digit reader"
    assert "(Digit reader)" in window.windowTitle() and window.isWindowModified()
    window.actions_["undo"].trigger()
    assert window.doc.project.name == "Digits CNN" and "(Digits CNN)" in window.windowTitle()
    window.actions_["redo"].trigger()
    assert window.save()
    assert json.loads(path.read_text())["name"] == "Digit reader"
    assert projects.load(path).name == "Digit reader"

    monkeypatch.setattr(project_io, "ask_project_name", lambda parent, current: "   ")
    window.rename_project()
    assert window.doc.project.name == "Digit reader" and not window.isWindowModified()
    assert "project name cannot be empty" in window.summary.message.text()
    assert "Rena&me Project..." in [a.text() for a in window.menu("file").actions()]


def test_recent_files_tell_same_named_files_apart(window, tmp_path):
    a = saved_copy(tmp_path / "first")
    b = saved_copy(tmp_path / "second")
    other = saved_copy(tmp_path / "third", name="other.wbproj")
    for path in (a, b, other):
        project_io.add_recent(path)
    window.recent_menu.aboutToShow.emit()
    entries = [act for act in window.recent_menu.actions() if act.text().startswith("&")]
    texts = [act.text() for act in entries]
    assert texts[0] == "&1 other.wbproj"  # a unique name stays short
    assert texts[1].startswith("&2 net.wbproj \u2014 ") and texts[1].endswith("second")
    assert texts[2].startswith("&3 net.wbproj \u2014 ") and texts[2].endswith("first")
    assert [act.toolTip() for act in entries] == [str(p.resolve()) for p in (other, b, a)]
    assert window.recent_menu.toolTipsVisible()
    assert project_io.short_folder(str(project_io.Path.home() / "x" / "p.wbproj")) == "~/x"


def test_file_dialogs_start_in_the_project_folder_else_the_last_one(window, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(project_io, "choose_open_path", lambda parent, folder: asked.append(folder))
    monkeypatch.setattr(project_io, "choose_save_path", lambda parent, suggestion: asked.append(suggestion))
    window.open_file()  # a template, nothing opened yet: home
    assert asked.pop() == str(project_io.Path.home())
    path = saved_copy(tmp_path / "work")
    assert window.open_file(str(path))
    window.open_file()
    assert asked.pop() == str(path.parent)
    window.save_as()
    assert asked.pop() == str(path.parent / "net.wbproj")
    monkeypatch.setattr(project_io, "choose_template", lambda parent: "digits_mlp")
    window.new_project()  # not saved: the folder last used
    window.open_file()
    assert asked.pop() == str(path.resolve().parent)
    window.save_as()
    assert asked.pop().startswith(str(path.resolve().parent))


# ---------------------------------------------------------------- problem 15: data settings

def _form(window):
    return window.training.panel.form


def test_csv_without_a_file_says_what_to_pick_in_words(window, qtbot):
    form, panel = _form(window), window.training.panel
    form.set_value("data", "source", "csv")
    path_box = form.fields[("data", "path")].widget
    assert path_box.isVisible() and form.target_box.isVisible()
    assert path_box.placeholderText().startswith("pick a file with Browse")
    assert "default" not in path_box.placeholderText()
    assert form.findChild(QPushButton, "browseData").isVisible()
    panel.probe.wait()
    qtbot.waitUntil(lambda: "needs a file" in text_of(panel.task_label))
    shown = text_of(panel.task_label)
    assert "The data cannot be read: the CSV source needs a file" in shown and "Browse" in shown
    assert shown.lower().count("data:") == 0  # said once, not "The data cannot be read: Data: ..."
    assert "$.data" not in shown and "TypeError" not in shown and "needs a path" not in shown
    form.set_value("data", "source", "mnist")
    assert path_box.placeholderText().startswith("pick a folder with Browse")
    assert not form.target_box.isVisible()  # a target column is a CSV thing


def test_a_project_file_without_its_data_file_opens_with_a_plain_error(window, tmp_path):
    proj = templates.load("tabular_mlp")
    text = json.loads(proj.dumps())
    text["data"] = {"source": "csv"}
    (tmp_path / "t.wbproj").write_text(json.dumps(text))
    assert not window.open_file(str(tmp_path / "t.wbproj"))
    message = str(window.load_errors[-1])
    assert "Data: the CSV source needs a file" in message and "$.data.path" not in message


def test_the_csv_target_column_is_picked_from_the_header(window, qtbot, tmp_path, monkeypatch):
    table = tmp_path / "t.csv"
    table.write_text("species,x1,x2,size\n" + "".join(f"{'ab'[i % 2]},{i},{i * 2},{i % 7}\n" for i in range(20)))
    form = _form(window)
    form.set_value("data", "source", "csv")
    monkeypatch.setattr("ui.training.settings_form.choose_data_path", lambda parent, source, start: str(table))
    form.browse()
    box = form.target_box
    qtbot.waitUntil(lambda: box.count() == 5)  # '(the last column)' and the four columns, read off the UI thread
    assert [box.itemText(i) for i in range(box.count())] == ["(the last column)", "species", "x1", "x2", "size"]
    assert box.currentText() == "(the last column)"
    box.setCurrentIndex(1)
    box.activated.emit(1)
    assert window.doc.project.data.target == "species"
    assert window.doc.undo_stack.undoText() == "Set data.target to species"
    window.doc.undo_stack.undo()
    assert window.doc.project.data.target is None and box.currentText() == "(the last column)"
    box.setEditText("x2")  # typed
    box.lineEdit().editingFinished.emit()
    assert window.doc.project.data.target == "x2"
    path = tmp_path / "t.wbproj"
    monkeypatch.setattr(project_io, "choose_save_path", lambda parent, suggestion: str(path))
    assert window.save_as()
    assert json.loads(path.read_text())["data"]["target"] == "x2"


# ---------------------------------------------------------------- problem 11: the unsaved-changes box

def test_the_unsaved_changes_box_discards_with_d(window, qtbot):
    seen = {}

    def press_d():
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        discard = box.button(QMessageBox.StandardButton.Discard)
        seen["text"], seen["key"] = discard.text(), discard.shortcut()
        seen["save"] = box.button(QMessageBox.StandardButton.Save).text()
        qtbot.keyClick(box, Qt.Key.Key_D)

    QTimer.singleShot(0, press_d)
    assert real_ask_unsaved(window, "net.wbproj") == "discard"
    assert seen["text"] == "&Discard" and seen["key"] == QKeySequence("Alt+D") and seen["save"] == "&Save"


# ---------------------------------------------------------------- problem 18: Help

def test_help_has_the_version_shortcuts_and_usage(window, qtbot):
    texts = [a.text() for a in window.menu("help").actions()]
    assert {"&Using Model Workbench", "&Keyboard Shortcuts", "&About Model Workbench"} <= set(texts)
    assert help_dialogs.version_text().startswith(f"Model Workbench {workbench.__version__}")

    extra = QAction("Zoom the plots", window)  # any new action with a key is listed, unwritten
    extra.setShortcut(QKeySequence("Ctrl+Alt+Z"))
    window.addAction(extra)
    window.doc.insert_kind("ReLU")  # Edit > Undo now reads "Undo Add ReLU ..."
    sheet = help_dialogs.ShortcutSheet(window)
    qtbot.addWidget(sheet)
    table = sheet.table
    rows = [tuple(table.item(r, c).text() for c in range(3)) for r in range(table.rowCount())]
    keys_listed = {k for _, _, keys in rows for k in keys.split(", ")}
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            if key.isEmpty():  # a standard key this desktop does not define
                continue
            assert key.toString(QKeySequence.SequenceFormat.NativeText) in keys_listed, action.text()
    assert ("Window", "Zoom the plots", QKeySequence("Ctrl+Alt+Z").toString(QKeySequence.SequenceFormat.NativeText)) \
        in rows
    assert any(menu == "File" and command == "Save" for menu, command, _ in rows)
    assert any(menu == "Edit" and command == "Undo" for menu, command, _ in rows)  # not "Undo Add ..."
    assert any(menu == "Training" for menu, _, _ in rows)  # another part's menu, read from its actions

    guide = help_dialogs.UsageGuide(window)
    qtbot.addWidget(guide)
    shown = guide.text.toPlainText()
    assert "The window" in shown and "Training in the window" in shown and "README" in shown
    assert "Ctrl+D" in shown  # the README's own words
