"""Menus, toolbar and shortcuts of the main window (kept apart so the window stays small).

Undo and redo are plain actions over the document's undo stack whose text says what will
be undone ("Undo Add Conv2d 'conv2d_1'"). Stack actions (Cut, Copy and Paste of layers as JSON
through ui.editor.clipboard, Delete, Duplicate, Freeze, Rename, Move Up / Down on Ctrl+Up / Down
and Alt+Up / Down) use shortcuts scoped to the stack, so Delete or Ctrl+C in a text field edits
or copies text, not the model; Ctrl+I (Edit in Inspector) puts the keyboard in the selected
layer's form. Help's shortcut sheet lists the actions themselves (ui.help_dialogs), so a new
shortcut is listed without anyone writing it down.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QMenu, QStyle

from ui import help_dialogs, project_io
from ui.editor.expand_action import expand_action


def _action(window, text, slot, shortcut=None, tip="", icon=None) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                          if shortcut is not None else tip)
    if icon is not None:
        action.setIcon(window.style().standardIcon(icon))
    action.triggered.connect(lambda *_: slot())
    return action


def build_actions(w) -> tuple[dict[str, QAction], QMenu]:
    """The window's actions, its File / Edit / View / Help menus and main toolbar; returns the
    actions by key and the File > Open Recent menu."""
    sp = QStyle.StandardPixmap
    stack = w.doc.undo_stack
    a = {
        "new": _action(w, "&New...", w.new_project, QKeySequence.StandardKey.New,
                       "Start a project from a template, or an empty one", sp.SP_FileIcon),
        "open": _action(w, "&Open...", w.open_file, QKeySequence.StandardKey.Open, "Open a .wbproj project",
                        sp.SP_DialogOpenButton),
        "save": _action(w, "&Save", w.save, QKeySequence.StandardKey.Save, "Save the project",
                        sp.SP_DialogSaveButton),
        "save_as": _action(w, "Save &As...", w.save_as, QKeySequence.StandardKey.SaveAs, "Save under a new name"),
        "rename_project": _action(w, "Rena&me Project...", w.rename_project, None,
                                  "Give the project a new name (kept in the project file)"),
        "export": _action(w, "&Export...", w.export_model, "Ctrl+E",
                          "Export the model (state_dict, TorchScript, ONNX, ...)"),
        "close_project": _action(w, "&Close Project", w.close_project, "Ctrl+W",
                                 "Close the project and show the start page (recent projects, templates)"),
        # StandardKey.Quit is empty on some Linux desktops
        "quit": _action(w, "&Quit", w.close, "Ctrl+Q", "Close the window"),
        "undo": _action(w, "&Undo", stack.undo, QKeySequence.StandardKey.Undo, "Undo the last edit",
                        sp.SP_ArrowBack),
        "redo": _action(w, "&Redo", stack.redo, [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")],
                        "Redo the edit just undone", sp.SP_ArrowForward),
        "cut": _action(w, "Cu&t", w.cut_selected, QKeySequence.StandardKey.Cut,
                       "Copy the selected layers to the clipboard and delete them"),
        "copy": _action(w, "&Copy", w.copy_selected, QKeySequence.StandardKey.Copy,
                        "Copy the selected layers to the clipboard (JSON, as in the project file)"),
        "paste": _action(w, "&Paste", w.paste_layers, QKeySequence.StandardKey.Paste,
                         "Insert the clipboard's layers after the selected row (from any project)"),
        "delete": _action(w, "&Delete", w.delete_selected, QKeySequence.StandardKey.Delete,
                          "Delete the selected layers", sp.SP_TrashIcon),
        "duplicate": _action(w, "Dupl&icate", w.duplicate_selected, "Ctrl+D", "Copy the selected layers"),
        "freeze": _action(w, "&Freeze / Unfreeze", w.toggle_frozen, "Ctrl+L",
                          "Keep the selected layers' weights fixed while training, or release them"),
        "rename": _action(w, "Re&name", w.rename_current, "F2", "Rename the selected layer"),
        "move_up": _action(w, "&Move Up", lambda: w.stack.move_selected(-1), [QKeySequence("Ctrl+Up"),
                           QKeySequence("Alt+Up")], "Move the selected layers one row up"),
        "move_down": _action(w, "Move Do&wn", lambda: w.stack.move_selected(1), [QKeySequence("Ctrl+Down"),
                             QKeySequence("Alt+Down")], "Move the selected layers one row down"),
        "inspect": _action(w, "Edit in Inspect&or", lambda: (w.docks["Inspector"].show(), w.docks["Inspector"].raise_(),
                           w.inspector.focus_form()), "Ctrl+I", "Type into the selected layer's first argument"),
        "search": _action(w, "Find &Layer Type", lambda: (w.docks["Layers"].show(), w.layer_palette.focus_search()),
                          QKeySequence.StandardKey.Find, "Search the palette"),
        "problem": _action(w, "&Go to Problem", lambda: w.stack.select_ids([w.stack.first_error_row()])
                           if w.stack.first_error_row() else None, "F8", "Select the first row that cannot work"),
        "shortcuts": _action(w, "&Keyboard Shortcuts", lambda: help_dialogs.show_shortcuts(w), "Ctrl+/",
                             "Every key the window knows, read from its commands"),
        "usage": _action(w, "&Using Model Workbench", lambda: help_dialogs.show_usage(w),
                         QKeySequence.StandardKey.HelpContents, "How to use the window: the README's usage sections"),
        "about": _action(w, "&About Model Workbench", lambda: help_dialogs.show_about(w), tip="The version"),
    }
    a["undo"].setIconText("Undo")
    a["redo"].setIconText("Redo")
    for key in ("cut", "copy", "paste", "delete", "duplicate", "freeze", "rename", "move_up", "move_down"):
        a[key].setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        w.stack.addAction(a[key])
    a["expand"] = expand_action(w.stack, w.doc, w.say)  # shown on a backbone row

    def sync_undo(*_):
        locked = bool(w.doc.edit_lock)
        a["undo"].setEnabled(stack.canUndo() and not locked)
        a["redo"].setEnabled(stack.canRedo() and not locked)
        a["undo"].setText(f"&Undo {stack.undoText()}".rstrip())
        a["redo"].setText(f"&Redo {stack.redoText()}".rstrip())
        for key in ("cut", "paste", "delete", "duplicate", "rename", "move_up", "move_down"):
            a[key].setEnabled(not locked)
        mode = QAbstractItemView.DragDropMode
        w.stack.setDragDropMode(mode.NoDragDrop if locked else mode.DragDrop)
        w.layer_palette.tree.setDragEnabled(not locked)
        if locked:
            w.statusBar().showMessage(f"Model locked while {w.doc.edit_lock}")
    stack.indexChanged.connect(sync_undo)
    stack.cleanChanged.connect(sync_undo)
    w.doc.lockChanged.connect(sync_undo)
    sync_undo()

    file_menu = w.add_menu("file", "&File")
    file_menu.addActions([a["new"], a["open"]])
    recent = file_menu.addMenu("Open &Recent")
    recent.aboutToShow.connect(partial(_fill_recent, w, recent))
    file_menu.addActions([a["save"], a["save_as"], a["rename_project"]])
    file_menu.addSeparator()
    file_menu.addAction(a["export"])
    file_menu.addSeparator()
    file_menu.addActions([a["close_project"], a["quit"]])
    edit = w.add_menu("edit", "&Edit")
    edit.addActions([a["undo"], a["redo"]])
    edit.addSeparator()
    edit.addActions([a["cut"], a["copy"], a["paste"]])
    edit.addSeparator()
    edit.addActions([a["delete"], a["duplicate"], a["rename"], a["freeze"], a["move_up"], a["move_down"], a["expand"]])
    edit.addSeparator()
    edit.addActions([a["inspect"], a["search"], a["problem"], w.stack.fix_action])  # Apply Fix (Ctrl+.)
    w.add_menu("view", "&View")
    help_menu = w.add_menu("help", "&Help")
    help_menu.addActions([a["usage"], a["shortcuts"]])
    help_menu.addSeparator()
    help_menu.addAction(a["about"])

    tools = w.toolbar
    tools.setMovable(False)
    tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tools.addActions([a["new"], a["open"], a["save"]])
    tools.addSeparator()
    tools.addActions([a["undo"], a["redo"]])
    tools.addSeparator()
    tools.addActions([a["delete"], a["duplicate"]])
    tools.addSeparator()
    tools.addAction(a["export"])
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, tools)
    return a, recent


def _fill_recent(w, menu) -> None:
    menu.clear()
    files = project_io.recent_files()
    menu.setToolTipsVisible(True)
    for n, (path, label) in enumerate(zip(files, project_io.recent_labels(files)), 1):
        exists = Path(path).is_file()
        action = menu.addAction(f"&{n} {label}" + ("" if exists else " (missing)"))
        action.setStatusTip(path)
        action.setToolTip(path)
        action.setEnabled(exists)
        action.triggered.connect(lambda *_, p=path: w.open_file(p))
    if not files:
        menu.addAction("No recent projects").setEnabled(False)
    else:
        menu.addSeparator()
        menu.addAction("Clear the list", lambda: project_io.settings().remove("recent_files"))
