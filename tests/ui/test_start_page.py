"""The start page (issue 13): File > Close Project shows it with the project's actions off;
its recent projects (name and path; a missing file said so and removable), templates, empty
project and Open each open a project and bring the layout back; the keyboard works in its
lists; "Show this page at launch" makes a launch without a file show it (off: a ready
project, as before); a file that fails at launch lands on it with the error."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget

from workbench.project import project_file as projects
from workbench.project import templates

from ui import project_io, start_page
from ui.main_window import MainWindow


def saved_copy(folder, name="net.wbproj", template="digits_cnn"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    projects.save(templates.load(template), path)
    return path


def click_row(qtbot, view, row: int) -> None:
    rect = view.visualItemRect(view.item(row))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def row_of(view, title: str) -> int:
    return next(r for r in range(view.count()) if view.item(r).text() == title)


def project_actions(window) -> dict:
    return {"Save": window.actions_["save"], "Export": window.actions_["export"],
            "Train": window.training_menu.action("start"), "Delete": window.actions_["delete"],
            "Undo": window.actions_["undo"], "Close": window.actions_["close_project"]}


def test_close_project_shows_the_page_with_the_project_actions_off(window, qtbot):
    assert not window.start_page_shown() and window.actions_["close_project"].shortcut().toString() == "Ctrl+W"
    window.doc.insert_kind("ReLU")
    window.doc.undo_stack.setClean()
    window.actions_["close_project"].trigger()
    assert window.start_page_shown() and window.pages.currentWidget() is window.start_page
    assert window.windowTitle() == "Model Workbench"
    assert not any(dock.isVisible() for dock in window.docks.values())
    assert [k for k, a in project_actions(window).items() if a.isEnabled()] == []
    assert not any(d.toggleViewAction().isEnabled() for d in window.docks.values())
    window.training_menu.sync()  # the panel's state says Train may start: the page keeps it off
    window.doc.undo_stack.indexChanged.emit(0)  # and undo / delete follow the stack again
    assert not window.training_menu.action("start").isEnabled() and not window.actions_["delete"].isEnabled()
    assert window.actions_["new"].isEnabled() and window.actions_["open"].isEnabled()
    assert window.doc.spec.layers == [] and window.doc.path is None  # nothing of the closed project
    assert not window.summary.isVisible()

    click_row(qtbot, window.start_page.new, row_of(window.start_page.new, "Digits MLP"))  # the layout is back
    assert not window.start_page_shown() and window.doc.project.name == "Digits MLP"
    assert all(dock.isVisible() for dock in window.docks.values()) and window.summary.isVisible()
    assert window.actions_["save"].isEnabled() and window.training_menu.action("start").isEnabled()
    assert window.windowTitle().startswith("Digits MLP (not saved)")


def test_clicking_a_recent_entry_opens_exactly_that_file(window, qtbot, tmp_path):
    a = saved_copy(tmp_path / "one", template="digits_mlp")
    b = saved_copy(tmp_path / "two", template="tabular_mlp")  # the same file name, another folder
    project_io.add_recent(a)
    project_io.add_recent(b)
    assert window.close_project()
    page = window.start_page
    assert page.entries("recent") == [("net.wbproj", str(b.resolve())), ("net.wbproj", str(a.resolve()))]
    click_row(qtbot, page.recent, 1)
    assert window.doc.path in (a, a.resolve()) and window.doc.project.name == "Digits MLP"
    assert not window.start_page_shown()


def test_a_missing_recent_entry_says_so_and_can_be_removed(window, qtbot, tmp_path):
    here = saved_copy(tmp_path / "here")
    gone = saved_copy(tmp_path / "gone", name="old.wbproj")
    project_io.add_recent(here)
    project_io.add_recent(gone)
    gone.unlink()
    window.close_project()
    page = window.start_page
    assert page.entries("recent")[0] == ("old.wbproj (missing)", str(gone.resolve()))
    assert page.recent.item(0).data(start_page.MISSING) and not page.recent.item(1).data(start_page.MISSING)
    click_row(qtbot, page.recent, 0)
    assert window.start_page_shown() and window.doc.path is None  # the page stays, nothing opened
    assert page.message.isVisible() and f"{gone.resolve()} is missing" in page.message.text()
    assert window.load_errors == []  # said on the page, no error box
    page.recent.setCurrentRow(0)
    page.recent.setFocus()
    qtbot.keyClick(page.recent, Qt.Key.Key_Delete)
    assert project_io.recent_files() == [str(here.resolve())]
    assert page.entries("recent") == [("net.wbproj", str(here.resolve()))] and not page.message.isVisible()
    page.remove_button.click()  # the button removes the selected one too
    assert project_io.recent_files() == [] and page.no_recent.isVisible() and not page.recent.isVisible()
    assert window.start_page_shown()


def test_templates_and_the_empty_project_open_from_the_page(window, qtbot):
    window.close_project()
    page = window.start_page
    titles = [title for title, _ in page.entries("new")]
    assert titles == [templates.load(n).name for n in templates.names()] + ["Empty project"]
    wine = dict(page.entries("new"))["Wine MLP"]
    assert wine == start_page.first_sentence(templates.load("tabular_mlp").description) and wine.endswith(").")
    click_row(qtbot, page.new, row_of(page.new, "Wine MLP"))
    assert window.doc.project.name == "Wine MLP" and window.doc.path is None and not window.start_page_shown()
    window.close_project()
    click_row(qtbot, page.new, row_of(page.new, "Empty project"))
    assert window.doc.project.name == templates.EMPTY_NAME and window.doc.spec.layers == []
    assert not window.start_page_shown() and window.actions_["save"].isEnabled()


def test_open_starts_in_the_last_project_folder(window, tmp_path, monkeypatch):
    last = saved_copy(tmp_path / "projects")
    project_io.add_recent(last)
    window.close_project()
    asked = []
    monkeypatch.setattr(project_io, "choose_open_path", lambda parent, folder: asked.append(folder) or str(last))
    window.start_page.open_button.click()
    assert asked == [str(last.parent.resolve())] and window.doc.path == last and not window.start_page_shown()


def test_the_keyboard_opens_the_selected_recent_project(window, qtbot, tmp_path):
    a = saved_copy(tmp_path / "a", template="digits_mlp")
    b = saved_copy(tmp_path / "b")
    project_io.add_recent(a)
    project_io.add_recent(b)
    window.close_project()
    page = window.start_page
    window.activateWindow()
    assert page.recent.currentRow() == 0
    qtbot.keyClick(page.recent, Qt.Key.Key_Down)
    assert page.recent.currentRow() == 1
    qtbot.keyClick(page.recent, Qt.Key.Key_Return)
    assert window.doc.path in (a, a.resolve()) and not window.start_page_shown()
    window.close_project()
    page.new.setCurrentRow(row_of(page.new, "Digits CNN"))
    qtbot.keyClick(page.new, Qt.Key.Key_Down)  # to Digits MLP
    qtbot.keyClick(page.new, Qt.Key.Key_Enter)
    assert window.doc.project.name == "Digits MLP"


def test_tab_order_runs_down_the_page(window, qtbot, tmp_path):
    project_io.add_recent(saved_copy(tmp_path))
    window.close_project()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    page = window.start_page
    assert QApplication.focusWidget() is page.recent  # the page starts in its first list
    seen = []
    for _ in range(4):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    assert seen == [page.remove_button, page.open_button, page.new, page.at_launch]


@pytest.mark.parametrize("answer, closed", [("cancel", False), ("discard", True)])
def test_close_project_asks_about_unsaved_changes(window, monkeypatch, answer, closed):
    asked = []
    monkeypatch.setattr(project_io, "ask_unsaved", lambda parent, name: asked.append(name) or answer)
    window.doc.insert_kind("ReLU")
    assert window.close_project() is closed
    assert asked == ["Digits CNN"] and window.start_page_shown() is closed
    assert ("relu_1" in window.doc.spec.ids()) is not closed


def test_close_project_is_refused_while_a_close_check_says_no(window):
    refuse = [True]  # as the Training dock does while a run goes on and the person keeps it
    window.add_close_check(lambda: not refuse[0])
    assert not window.close_project() and not window.start_page_shown()
    refuse[0] = False
    assert window.close_project() and window.start_page_shown()


def test_show_at_launch_makes_a_launch_without_a_file_show_the_page(window, qtbot, tmp_path):
    recent = saved_copy(tmp_path / "p", template="digits_mlp")
    project_io.add_recent(recent)
    plain = MainWindow()  # the box is off by default: a ready project, the last one, as before
    qtbot.addWidget(plain)
    assert not plain.start_page_shown() and plain.doc.path == recent.resolve()
    window.close_project()
    assert not window.start_page.at_launch.isChecked()
    window.start_page.at_launch.click()
    assert project_io.start_page_at_launch()
    paged = MainWindow()
    qtbot.addWidget(paged)
    assert paged.start_page_shown() and paged.start_page.at_launch.isChecked()
    assert paged.start_page.entries("recent") == [(recent.name, str(recent.resolve()))]
    assert not paged.actions_["save"].isEnabled()
    with_file = MainWindow(str(recent))  # a file on the command line always opens
    qtbot.addWidget(with_file)
    assert not with_file.start_page_shown() and with_file.doc.path == recent


def test_a_file_that_fails_at_launch_lands_on_the_page_with_the_error(qtbot, isolated_settings, tmp_path):
    missing = tmp_path / "nope.wbproj"
    w = MainWindow(str(missing))
    qtbot.addWidget(w)
    assert w.start_page_shown()
    message = w.start_page.message
    assert not message.isHidden() and message.text() == f"Could not open {missing}: no such file"
    assert message.property("error") is True
    qtbot.waitUntil(lambda: len(isolated_settings) == 1)  # the message box with every problem, as before
    bad = tmp_path / "bad.wbproj"
    data = templates.load("digits_cnn").to_json()
    data["model"]["layers"][0]["type"] = "Conv2D"
    data["model"]["layers"][1]["args"] = {"momentum": 7}
    bad.write_text(json.dumps(data))
    w2 = MainWindow(str(bad))
    qtbot.addWidget(w2)
    assert w2.start_page.message.text().startswith(f"Could not open {bad}") \
        and w2.start_page.message.text().endswith("(and 1 more problem)")


def test_the_launch_error_box_does_not_speak_of_an_open_project(qtbot, isolated_settings, tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr(project_io, "show_error", lambda parent, title, exc, *outcome: said.append(outcome))
    w = MainWindow(str(tmp_path / "nope.wbproj"))
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: len(said) == 1)
    assert said[0] and "start page" in said[0][0] and "left as it was" not in said[0][0]
    said.clear()
    assert not w.open_file(str(tmp_path / "other.wbproj"))  # later, a project is open and is kept
    assert said == [()]  # the default: "The open project was left as it was."


def test_closing_on_the_page_keeps_the_editor_layout_for_next_time(window, qtbot):
    window.close_project()
    window.close()
    again = MainWindow(project=templates.load("digits_cnn"))
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    assert all(dock.isVisible() for dock in again.docks.values())


@pytest.mark.parametrize("size", [(1024, 700), (1920, 1080)])
def test_the_page_fits_small_and_stays_a_column_on_wide_screens(window, qtbot, tmp_path, size):
    for n in range(project_io.MAX_RECENT):
        project_io.add_recent(saved_copy(tmp_path / f"folder_{n}" / "projects", name=f"project_{n}.wbproj"))
    window.resize(*size)
    window.close_project()
    window.start_page.show_message("Could not open /somewhere/a_project.wbproj: no such file", error=True)
    QApplication.processEvents()
    page = window.start_page
    assert (window.width(), window.height()) == size and page.width() > size[0] - 20
    column = page.findChild(QWidget, "startColumn")
    assert column.width() <= start_page.MAX_WIDTH
    assert page.recent.count() == project_io.MAX_RECENT
    assert page.recent.verticalScrollBar().maximum() == 0 and page.new.verticalScrollBar().maximum() == 0
    assert page.scroll.verticalScrollBar().maximum() == 0  # all of it in view, nothing to scroll
    assert page.recent.mapTo(page, page.recent.rect().topLeft()).y() \
        > page.message.mapTo(page, page.message.rect().bottomLeft()).y()
    if size[0] == 1920:
        assert column.width() == start_page.MAX_WIDTH
        assert column.mapTo(page, column.rect().topLeft()).x() > 300  # centred, not stretched
