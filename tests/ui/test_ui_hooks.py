"""The main window's hooks for the parts that join it (the Training dock, Run Distributed):
menus by key before Help, toolbar buttons, close checks, shutdown hooks, the model Export
uses. The Training menu follows the panel's buttons."""
from __future__ import annotations

from PySide6.QtGui import QAction



def titles(window) -> list[str]:
    return [a.text().replace("&", "") for a in window.menuBar().actions()]


def test_menus_come_in_order_and_added_ones_go_before_help(window):
    assert titles(window) == ["File", "Edit", "View", "Training", "Help"]
    tools = window.add_menu("tools", "&Tools")
    assert titles(window) == ["File", "Edit", "View", "Training", "Tools", "Help"]
    assert window.menu("tools") is tools and window.menu("training").title() == "&Training"
    training = [a.text().replace("&", "") for a in window.menu("training").actions() if not a.isSeparator()]
    assert training == ["Train", "Pause", "Stop", "Resume from Checkpoint...", "Run Distributed...",
                        "Find Learning Rate..."]
    view = [a.text().replace("&", "") for a in window.menu("view").actions()]
    assert {"Layers", "Inspector", "History", "Training"} <= set(view)


def test_a_toolbar_action_lands_on_the_main_toolbar(window):
    action = QAction("Profile", window)
    window.add_toolbar_action(action)
    assert window.toolbar.actions()[-1] is action
    assert window.training_menu.action("start") in window.toolbar.actions()


def test_close_checks_are_asked_in_order_and_shutdown_hooks_run_once(window):
    asked, shut = [], []
    window.add_close_check(lambda: asked.append("first") or True)
    window.add_close_check(lambda: asked.append("second") or len(asked) > 2)
    window.add_shutdown_hook(lambda: shut.append(1))
    assert not window.close() and window.isVisible() and shut == []
    assert asked == ["first", "second"]
    assert window.close() and shut == [1]


def test_close_checks_also_guard_new_and_open(window, monkeypatch):
    from ui import project_io

    refuse = [True]
    window.add_close_check(lambda: not refuse[0])
    monkeypatch.setattr(project_io, "choose_template", lambda parent: "digits_mlp")
    window.new_project()
    assert window.doc.project.name == "Digits CNN"  # refused: the open project stays
    assert window.open_file("/nowhere.wbproj") is False and window.doc.project.name == "Digits CNN"
    refuse[0] = False
    window.new_project()
    assert window.doc.project.name != "Digits CNN"


def test_the_model_source_feeds_export_and_takes_loaded_weights(window):
    got = []
    window.set_model_source(lambda: "trained", lambda model, path: got.append((model, path)))
    assert window.trained_model() == "trained"
    window.receive_weights("model", "/w.pth")
    assert got == [("model", "/w.pth")]


def test_the_training_menu_follows_the_panel(qtbot, window):
    panel, menu = window.training.panel, window.training_menu
    panel.probe.wait()
    assert menu.action("start").isEnabled() and not menu.action("pause").isEnabled()
    panel.set_state("running")
    assert not menu.action("start").isEnabled() and menu.action("pause").isEnabled()
    assert menu.action("stop").isEnabled() and not menu.action("resume_from").isEnabled()
    panel.set_state("paused")
    assert menu.action("pause").text() == "&Resume"
    requests = []
    panel.resumeRequested.connect(lambda: requests.append("resume"))
    panel.pauseRequested.connect(lambda: requests.append("pause"))
    menu.action("pause").trigger()  # F6 on a paused run resumes it
    panel.set_state("running")
    menu.action("pause").trigger()
    assert requests == ["resume", "pause"]
    panel.set_state("idle")
    assert menu.action("pause").text() == "&Pause" and menu.action("resume_from").isEnabled()
