"""A Parallel block in the window, driven as a user drives it: added from the palette, layers
dropped into its branches (on the side-by-side drawing and on a Branch row), branches added and
removed, a merge that cannot work, undo, save and reopen; assertions on the spec and on what
the stack shows (rows, the drawing's pixels, tooltips, the inspector)."""
from __future__ import annotations

import html

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QBrush, QColor

from workbench.model.spec import LayerSpec

from ui.common import theme
from ui.editor import branch_strip
from ui.editor.palette import kind_mime
from ui.editor.stack_cells import STRIP_DEPTH, Strip, strip_rows
from ui.editor.stack_model import SHAPE, TYPE
from window_helpers import above, deliver_drop, ids_of, on_row, text_of


def add_parallel(window) -> str:
    """A Parallel from the palette, dropped above 'conv2' (its input: relu1's (32, 8, 8))."""
    deliver_drop(window.stack, kind_mime("Parallel"), above(window.stack, "conv2"))
    return window.stack.current_id()


def lane_point(view, parallel_id: str, strip_row: int, lane: int) -> QPoint:
    """The centre of column ``lane`` in row ``strip_row`` of a Parallel's drawing (viewport coordinates)."""
    model = view.stack_model
    index = model.strip_index(parallel_id, strip_row)
    rect = view.visualRect(index)
    columns = branch_strip.lanes(view.strip_area(index, rect), len(view.stack_model.doc.spec.find(parallel_id).layers))
    return QPoint(columns[lane].center().x(), rect.center().y())


def strip_pixels(view, parallel_id: str, strip_row: int):
    """The colours drawn in one row of a Parallel's drawing."""
    rect = view.visualRect(view.stack_model.strip_index(parallel_id, strip_row))
    image = view.viewport().grab().toImage()
    return {image.pixelColor(x, y).name() for x in range(rect.left(), rect.right())
            for y in range(rect.top() + 1, rect.bottom())}


def test_the_palette_offers_parallel_with_two_empty_branches_drawn_side_by_side(window):
    view, doc, model = window.stack, window.doc, window.stack.stack_model
    palette = window.layer_palette
    assert palette.item("Parallel").parent().text(0) == "Composite"
    assert "Branch" not in palette.visible_kinds()  # a Branch comes with its Parallel, never on its own
    pid = add_parallel(window)
    parallel = doc.spec.find(pid)
    assert parallel.type == "Parallel" and [b.type for b in parallel.layers] == ["Branch", "Branch"]
    assert ids_of(doc.spec).index(pid) == ids_of(doc.spec).index("conv2") - 1
    assert doc.undo_stack.undoText() == f"Add Parallel '{pid}'"
    # two identities concatenated on the channels: 64 channels, and the row says so
    assert model.index_of(pid, SHAPE).data() == "(64, 8, 8)"
    parent = model.index_of(pid)
    drawing = strip_rows(parallel)
    assert drawing == 3  # branch names, one row (the identities), the merge
    assert model.rowCount(parent) == drawing + 2
    for row in range(drawing):
        assert isinstance(model.node(model.index(row, 0, parent)), Strip)
        assert view.isFirstColumnSpanned(row, parent)  # one picture across the row
    assert [model.layer_id(model.index(drawing + n, 0, parent)) for n in range(2)] == [b.id for b in parallel.layers]
    assert view.isExpanded(parent)
    # the merge box is drawn (no problem: not red), and says what it makes
    pixels = strip_pixels(view, pid, drawing - 1)
    assert branch_strip.MERGE_FILL in pixels and QColor(theme.ERROR_BACKGROUND).name() not in pixels
    assert branch_strip.merge_text(parallel, doc.layer_info(pid)) == "concat dim 1 \u2192 (64, 8, 8)"


def test_a_layer_dropped_on_the_second_column_goes_into_the_second_branch_and_undoes(window):
    view, doc, model = window.stack, window.doc, window.stack.stack_model
    pid = add_parallel(window)
    first, second = (b.id for b in doc.spec.find(pid).layers)
    deliver_drop(view, kind_mime("Conv2d"), lane_point(view, pid, 1, 1))
    assert [layer.id for layer in doc.spec.find(second).layers] == ["conv2d_1"]
    assert doc.spec.find(first).layers == []
    assert doc.undo_stack.undoText() == "Add Conv2d 'conv2d_1'"
    assert view.current_id() == "conv2d_1"
    # a 3x3 conv without padding shrinks the map: the identity's 8x8 and its 6x6 cannot concat
    assert doc.layer_info(pid).error is not None
    doc.set_arg("conv2d_1", "padding", 1)
    assert model.index_of(pid, SHAPE).data() == "(48, 8, 8)"  # 32 channels of the identity + the conv's 16
    doc.set_arg("conv2d_1", "out_channels", 8)
    assert model.index_of(pid, SHAPE).data() == "(40, 8, 8)"  # the merge's output shape
    assert model.index_of("conv2", SHAPE).data() == "(64, 8, 8)"  # and the next layer takes it
    assert branch_strip.merge_text(doc.spec.find(pid), doc.layer_info(pid)) == "concat dim 1 \u2192 (40, 8, 8)"
    # a second layer below the first in the same column: the drawing grows by a row
    rows = model.rowCount(model.index_of(pid))
    deliver_drop(view, kind_mime("ReLU"), lane_point(view, pid, strip_rows(doc.spec.find(pid)) - 1, 1))
    assert [layer.type for layer in doc.spec.find(second).layers] == ["Conv2d", "ReLU"]
    assert model.rowCount(model.index_of(pid)) == rows + 1
    assert view.isFirstColumnSpanned(strip_rows(doc.spec.find(pid)) - 1, model.index_of(pid))
    for _ in range(4):  # the ReLU, the two argument edits and the Conv2d
        doc.undo_stack.undo()
    assert doc.spec.find(second).layers == [] and model.rowCount(model.index_of(pid)) == rows
    assert model.index_of(pid, SHAPE).data() == "(64, 8, 8)"


def test_drop_on_a_branch_row_and_moving_a_layer_between_branches(window):
    view, doc, model = window.stack, window.doc, window.stack.stack_model
    pid = add_parallel(window)
    first, second = (b.id for b in doc.spec.find(pid).layers)
    deliver_drop(view, kind_mime("BatchNorm2d"), on_row(view, first))
    assert [layer.id for layer in doc.spec.find(first).layers] == ["batchnorm2d_1"]
    # drag the row onto the second column of the drawing: one undoable move
    mime = model.mimeData([model.index_of("batchnorm2d_1")])
    drop = deliver_drop(view, mime, lane_point(view, pid, 1, 1), Qt.DropAction.MoveAction)
    assert not drop.isAccepted()  # a move: the source view never removes rows itself
    assert doc.spec.find(first).layers == [] and [c.id for c in doc.spec.find(second).layers] == ["batchnorm2d_1"]
    assert doc.undo_stack.undoText() == "Move 'batchnorm2d_1'"
    doc.undo_stack.undo()
    assert [layer.id for layer in doc.spec.find(first).layers] == ["batchnorm2d_1"]


def test_a_layer_cannot_stand_straight_in_a_parallel_nor_a_branch_outside_one(window):
    view, doc, model = window.stack, window.doc, window.stack.stack_model
    pid = add_parallel(window)
    first = doc.spec.find(pid).layers[0].id
    count = doc.undo_stack.count()
    # a palette layer on the Parallel row itself: refused (only branches sit there)
    deliver_drop(view, kind_mime("ReLU"), on_row(view, pid))
    assert doc.undo_stack.count() == count
    # a Branch dragged out to the top level: refused
    deliver_drop(view, model.mimeData([model.index_of(first)]), above(view, "conv1"), Qt.DropAction.MoveAction)
    assert doc.undo_stack.count() == count and doc.locate(first)[0] == pid
    try:
        doc.insert_layers([LayerSpec("stray", "ReLU")], pid, 0, "add")
    except Exception as exc:  # noqa: BLE001 - the message is what the user reads
        assert "'stray' cannot go there: a Parallel holds only Branch rows" in str(exc)
    else:
        raise AssertionError("a ReLU went straight into a Parallel")
    # Add Layer with a Branch row selected puts the layer into that branch
    view.select_ids([first])
    window.add_layer("ReLU")
    assert [layer.id for layer in doc.spec.find(first).layers] == ["relu_1"]


def test_add_and_remove_branch_from_the_context_menu_and_the_inspector(window, qtbot):
    view, doc, model = window.stack, window.doc, window.stack.stack_model
    pid = add_parallel(window)
    view.select_ids([pid])
    assert view.add_branch_action.isVisible() and not view.remove_branch_action.isVisible()
    assert view.add_branch_action in view.actions()  # in the row's context menu
    view.add_branch_action.trigger()
    branches = [b.id for b in doc.spec.find(pid).layers]
    assert len(branches) == 3 and view.current_id() == branches[2]
    assert doc.undo_stack.undoText() == f"Add Branch '{branches[2]}' to '{pid}'"
    assert model.index_of(pid, SHAPE).data() == "(96, 8, 8)"
    # the inspector of a Branch: Remove Branch
    inspector = window.inspector
    assert inspector.layer.id == branches[2] and inspector.remove_branch is not None
    qtbot.mouseClick(inspector.remove_branch, Qt.MouseButton.LeftButton)
    assert [b.id for b in doc.spec.find(pid).layers] == branches[:2]
    # down to two: removing another is refused, and the inspector says why
    view.select_ids([branches[0]])
    qtbot.mouseClick(window.inspector.remove_branch, Qt.MouseButton.LeftButton)
    assert [b.id for b in doc.spec.find(pid).layers] == branches[:2]
    assert "needs at least two branches" in window.inspector.message.text()
    # the Parallel's inspector: merge and dim fields, and Add Branch
    view.select_ids([pid])
    assert {"merge", "dim"} <= set(window.inspector.fields)
    qtbot.mouseClick(window.inspector.add_branch, Qt.MouseButton.LeftButton)
    assert len(doc.spec.find(pid).layers) == 3
    doc.undo_stack.undo()
    assert len(doc.spec.find(pid).layers) == 2


def test_branches_that_cannot_merge_mark_the_parallel_row_naming_the_branch(window):
    view, doc, model = window.stack, window.doc, window.stack.stack_model
    pid = add_parallel(window)
    first, second = (b.id for b in doc.spec.find(pid).layers)
    doc.insert_kind("Conv2d", second)
    doc.set_arg("conv2d_1", "padding", 1)
    doc.set_arg("conv2d_1", "out_channels", 16)
    view.select_ids([pid])
    window.inspector.fields["merge"].edited.emit("add")  # the inspector's merge field: add needs equal shapes
    assert doc.spec.find(pid).args["merge"] == "add"
    row = model.index_of(pid)
    assert row.siblingAtColumn(SHAPE).data() == "error"
    assert isinstance(row.siblingAtColumn(SHAPE).data(Qt.ItemDataRole.BackgroundRole), QBrush)
    tip = html.unescape(row.siblingAtColumn(TYPE).data(Qt.ItemDataRole.ToolTipRole))
    assert f"branch '{second}'" in tip and "Fix:" in tip
    assert f"'{second}'" in text_of(window.inspector.problem)
    assert text_of(window.summary.status).startswith(f"⚠ '{pid}'")
    # the drawing's merge box turns red and names the branch; that branch's name is red too
    parallel = doc.spec.find(pid)
    assert branch_strip.merge_text(parallel, doc.layer_info(pid)) == f"add: cannot merge ({second})"
    assert branch_strip.culprits(parallel, doc.layer_info(pid).error.problem) == {second}
    red = QColor(theme.ERROR_BACKGROUND).name()  # the merge box's and the branch name's fill
    assert red in strip_pixels(view, pid, strip_rows(parallel) - 1)
    assert red in strip_pixels(view, pid, 0)
    doc.undo_stack.undo()
    assert model.index_of(pid, SHAPE).data() == "(48, 8, 8)"  # concat again
    assert red not in strip_pixels(view, pid, strip_rows(parallel) - 1)


def test_a_click_on_a_box_of_the_drawing_selects_that_layer(window, qtbot):
    view, doc = window.stack, window.doc
    pid = add_parallel(window)
    second = doc.spec.find(pid).layers[1].id
    doc.insert_kind("ReLU", second)
    view.select_ids(["conv1"])
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=lane_point(view, pid, 1, 1))
    assert view.current_id() == "relu_1" and window.inspector.layer.id == "relu_1"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=lane_point(view, pid, 0, 0))
    assert view.current_id() == doc.spec.find(pid).layers[0].id  # a branch's name: its Branch row


def test_a_parallel_saves_and_reopens_with_its_drawing(window, tmp_path):
    view, doc = window.stack, window.doc
    pid = add_parallel(window)
    second = doc.spec.find(pid).layers[1].id
    deliver_drop(view, kind_mime("Conv2d"), lane_point(view, pid, 1, 1))
    doc.set_arg("conv2d_1", "padding", 1)
    assert window.stack.stack_model.index_of(pid, SHAPE).data() == "(48, 8, 8)"
    path = tmp_path / "branches.wbproj"
    doc.save(path)
    window.close_project()
    assert window.open_file(str(path))
    doc, model = window.doc, window.stack.stack_model
    assert [layer.id for layer in doc.spec.find(second).layers] == ["conv2d_1"]
    assert model.index_of(pid, SHAPE).data() == "(48, 8, 8)"
    parent = model.index_of(pid)
    assert isinstance(model.node(model.index(0, 0, parent)), Strip)
    assert window.stack.isFirstColumnSpanned(0, parent)
    assert model.index_of("conv2d_1").parent() == model.index_of(second)


def test_a_long_branch_is_drawn_to_a_few_rows_and_a_drop_on_its_rest_goes_last(window):
    view, doc, model = window.stack, window.doc, window.stack.stack_model
    pid = add_parallel(window)
    first = doc.spec.find(pid).layers[0].id
    doc.insert_layers([LayerSpec(f"act{n}", "ReLU") for n in range(STRIP_DEPTH + 3)], first, 0, "add")
    parallel = doc.spec.find(pid)
    assert strip_rows(parallel) == STRIP_DEPTH + 2  # not 11 + 2: the Branch rows below list them all
    assert model.rowCount(model.index_of(pid)) == STRIP_DEPTH + 2 + 2
    deliver_drop(view, kind_mime("Dropout"), lane_point(view, pid, STRIP_DEPTH, 0))  # the "+4 more" row
    assert doc.spec.find(first).layers[-1].id == "dropout_1"


def test_deeply_nested_names_stay_readable_in_a_narrow_stack(window, qtbot):
    """The U-Net template nests five levels: at 1024x700 the Layer column keeps room for a short
    name on the most nested row (Arguments gives way first), and every column fits."""
    from workbench.project import project_file as projects
    from ui.editor.stack_model import ID
    from pathlib import Path

    window.doc.replace_project(projects.load(Path(__file__).resolve().parents[2] / "resources" / "templates"
                                             / "unet_digits.wbproj"))
    window.resize(1024, 700)
    qtbot.wait(50)
    view = window.stack
    view.fit_columns()
    deepest = max((path.count(".") for path, _ in window.doc.spec.walk()))
    layer = next(layer for path, layer in window.doc.spec.walk() if path.count(".") == deepest)
    room = view.visualRect(view.stack_model.index_of(layer.id, ID)).width()
    assert room >= view.fontMetrics().horizontalAdvance("conv2d"), (layer.id, room)
    shown = [c for c in range(view.header().count()) if not view.isColumnHidden(c)]
    assert sum(view.header().sectionSize(c) for c in shown) <= view.viewport().width()
