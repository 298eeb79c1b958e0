"""What each row of the stack shows: text, icons, colours, tooltips, check state.

One function builds a whole row's cells ({role: value} per column) from the layer and the
document's inference, so the item model answers Qt's many ``data()`` calls from a dict.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor

from workbench.insight import costs, latency as latency_words
from workbench.model import catalog
from workbench.model.shapes import fmt
from workbench.model.spec import LayerSpec

from ui.common import icons, theme

# The id is logical column 0 (the tree column: it indents nested rows and keeps Qt's model
# checks meaningful); the view shows the position column first.
# The cost columns come after the others, so the numbers of the first seven never change; they
# are hideable (the header's context menu) and filled from ``ProjectDocument.costs``.
COLUMNS = ("Layer", "#", "Type", "Arguments", "Output shape", "Params", "Freeze", "MACs", "Memory", "Latency")
ID, POS, TYPE, ARGS, SHAPE, PARAMS, FROZEN, MACS, MEMORY, LATENCY = range(len(COLUMNS))
COST_COLUMNS = (MACS, MEMORY, LATENCY)
HEADER_TIPS = {
    POS: "Position in the stack (3.2: second layer inside block 3)",
    ARGS: "Key arguments (abbreviated: out = out_channels / out_features, k = kernel_size, s = stride, "
          "pad = padding); hover a row or open the inspector for all of them",
    SHAPE: "Output shape of each row for one example (the batch dimension is left out)",
    PARAMS: "Parameters each row learns; grey: frozen",
    FROZEN: "Frozen layers keep their weights while training (also mid-run)",
    MACS: "Multiply-adds of one example's forward pass (torch's FlopCounterMode; FLOPs are twice this). "
          "Right-click the header to show or hide the cost columns",
    MEMORY: "Activations each row keeps for the backward pass at the project's batch size (the training "
            "memory forecast; the status bar has the total with weights, gradients and optimizer state)",
    LATENCY: "Forward + backward time per row, measured by View > Profile Layers on the training device",
}


_R = Qt.ItemDataRole
_DISPLAY, _EDIT, _DECORATION, _CHECK = int(_R.DisplayRole), int(_R.EditRole), int(_R.DecorationRole), \
    int(_R.CheckStateRole)
_BACKGROUND, _FOREGROUND, _ALIGN, _TIP = int(_R.BackgroundRole), int(_R.ForegroundRole), \
    int(_R.TextAlignmentRole), int(_R.ToolTipRole)
BAR_ROLE = int(_R.UserRole) + 1  # Latency: the row's time as a fraction of the slowest row's (the bar's length)
RANK_ROLE = int(_R.UserRole) + 2  # Latency: 1, 2, 3 for the three slowest rows, else None
STRIP_ROLE = int(_R.UserRole) + 3  # a Parallel's drawing row: what it draws (changes when the drawing must repaint)
CHANGED_ROLES = [_DISPLAY, _EDIT, _DECORATION, _CHECK, _BACKGROUND, _FOREGROUND, _TIP, BAR_ROLE,
                 RANK_ROLE, STRIP_ROLE]  # never the size
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_BRUSHES: dict[str, QBrush] = {}


def _brush(color: str) -> QBrush:
    if color not in _BRUSHES:
        _BRUSHES[color] = QBrush(QColor(color))
    return _BRUSHES[color]


@dataclass(frozen=True)
class Stage:
    """A backbone stage shown as a child row."""

    layer: LayerSpec
    name: str


@dataclass(frozen=True, eq=False)
class Strip:
    """One row of a Parallel block's side-by-side drawing (``ui.editor.branch_strip``): the first
    child rows of a Parallel, before its Branch rows. ``layer`` is the Parallel, ``row`` counts
    from 0 (the branch names) to ``strip_rows(layer) - 1`` (the merge)."""

    layer: LayerSpec
    row: int


STRIP_DEPTH = 6  # layer rows a Parallel's drawing shows at most; a longer branch ends in "+n more"


def strip_rows(parallel: LayerSpec) -> int:
    """How many rows a Parallel's drawing takes: the branch names, one row per layer of the
    longest branch (an empty branch, the identity, still takes one; at most ``STRIP_DEPTH``, so a
    long branch does not push the rest of the stack away: its Branch rows list it all), and the merge."""
    return 2 + min(STRIP_DEPTH, max([1] + [len(branch.layers) for branch in parallel.layers]))


def short(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value)) if value and len(set(value)) > 1 else str(value[0] if value else "")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# short names for the Arguments column only (the inspector and tooltips use the full names)
_ABBREV = {"out_channels": "out", "out_features": "out", "kernel_size": "k", "stride": "s", "padding": "pad",
           "dilation": "dil", "hidden_size": "hidden", "num_embeddings": "vocab", "embedding_dim": "dim",
           "negative_slope": "slope", "unflattened_size": "size", "output_size": "size",
           "dim_feedforward": "ff", "num_groups": "groups"}


def key_args_text(layer: LayerSpec) -> str:
    kind = catalog.kind(layer.type)
    keys = kind.key_args if kind else ()
    return ", ".join(f"{_ABBREV.get(k, k)}={short(layer.args[k])}" for k in keys if k in layer.args)


def layer_cells(doc, layer: LayerSpec, info) -> list[dict]:
    """Every column's {role: value} for a layer row."""
    error = info.error if info else None
    known = info is not None and info.out_shape is not None
    frozen = bool(info and info.params and not info.trainable)
    text = {POS: info.position if info else "", ID: layer.id, TYPE: layer.type, ARGS: key_args_text(layer),
            SHAPE: "error" if error else fmt(info.out_shape) if known else "unknown",
            PARAMS: f"{info.params:,}" if info and info.params is not None else "", FROZEN: None}
    tip = tooltip(doc, layer, info)
    cells = [{_DISPLAY: text[col], _TIP: tip} for col in range(FROZEN + 1)]
    cells += cost_cells(doc.costs, layer, info)
    if error:
        for cell in cells:
            cell[_BACKGROUND] = _brush(theme.ERROR_BACKGROUND)
        cells[ID][_DECORATION] = icons.error_icon()
        cells[SHAPE][_FOREGROUND] = _brush(theme.ERROR)
    elif not known:
        cells[SHAPE][_FOREGROUND] = _brush(theme.MUTED)
    cells[ID][_EDIT] = layer.id
    cells[POS][_FOREGROUND] = _brush(theme.MUTED)
    cells[TYPE][_DECORATION] = icons.type_badge(layer.type)
    cells[PARAMS][_ALIGN] = _RIGHT
    if frozen:
        cells[PARAMS][_DECORATION] = icons.frozen_icon()
        cells[PARAMS][_FOREGROUND] = _brush(theme.MUTED)
    above = doc.frozen_above(layer.id)
    if above is not None:  # frozen with its block: checked, and changed only on the block's row
        cells[FROZEN] = {_TIP: f"Frozen with the block '{above}' (unfreeze that row to choose layers)",
                         _CHECK: Qt.CheckState.Checked}
    elif layer.frozen or not weightless(layer, info):
        cells[FROZEN] = {_TIP: HEADER_TIPS[FROZEN],
                         _CHECK: Qt.CheckState.Checked if layer.frozen else Qt.CheckState.Unchecked}
    else:  # nothing to freeze (ReLU, Flatten, pooling, Dropout): no box
        cells[FROZEN] = {_TIP: f"{layer.type} has no weights to freeze"}
    if error:
        cells[FROZEN][_BACKGROUND] = _brush(theme.ERROR_BACKGROUND)
    return cells


def cost_texts(figures, path: str) -> tuple[str, str, str]:
    """The MACs, Memory and Latency texts of the row at ``path`` ('' where not known)."""
    row, latency = figures.row(path), figures.row_latency(path)
    return (costs.count(row.macs) if row is not None else "", costs.size(figures.row_memory(path)),
            latency_words.milliseconds(latency.total_ms) if latency is not None else "")


def cost_cells(figures, layer: LayerSpec, info) -> list[dict]:
    """The MACs, Memory and Latency cells of a layer row: compact numbers, exact ones in the tooltip."""
    cells: list[dict] = [{}, {}, {}]
    if info is None:
        return cells
    path = info.path
    macs, memory, latency = cost_texts(figures, path)
    row = figures.row(path)
    if row is not None:
        batch = figures.report.forecast.batch
        cells[0] = {_DISPLAY: macs, _ALIGN: _RIGHT,
                    _TIP: f"<b>{escape(layer.id)}</b>: {row.macs:,} multiply-adds ({row.flops:,} FLOPs) per example "
                          "in the forward pass" + (" (its nested rows together)" if catalog.nests(layer.type) else "")}
        cells[1] = {_DISPLAY: memory, _ALIGN: _RIGHT,
                    _TIP: f"<b>{escape(layer.id)}</b> keeps {row.activations:,} bytes per example for the backward "
                          f"pass: {figures.row_memory(path):,} bytes at batch {batch}"}
    timing = figures.row_latency(path)
    if timing is not None:
        report = figures.latency
        longest = report.longest_ms()
        ranks = {t.path: n for n, t in enumerate(report.top(3), 1)}
        rank = ranks.get(path)
        place = f"; the {('slowest', '2nd slowest', '3rd slowest')[rank - 1]} row" if rank else ""
        cells[2] = {_DISPLAY: latency, _ALIGN: _RIGHT, BAR_ROLE: timing.total_ms / longest if longest > 0 else 0.0,
                    RANK_ROLE: rank,
                    _TIP: f"<b>{escape(layer.id)}</b>: forward {latency_words.milliseconds(timing.forward_ms)} + "
                          f"backward {latency_words.milliseconds(timing.backward_ms)}, "
                          f"{report.share(path):.0%} of a training step{place}<br>median of {report.repeats} steps "
                          f"at batch {report.batch} on {escape(report.device)}"}
    if info.error is not None:
        for cell in cells:
            cell[_BACKGROUND] = _brush(theme.ERROR_BACKGROUND)
    return cells


def weightless(layer: LayerSpec, info) -> bool:
    """A layer with no weights gets no freeze box (a frozen one keeps it, to be unfrozen)."""
    return info is not None and info.params == 0 and not catalog.nests(layer.type)


def freeze_box(doc, node) -> str:
    """What the Freeze cell of a row offers: 'box' (a check box), 'locked' (checked with its
    backbone or block, changed there) or 'none' (no weights)."""
    if isinstance(node, Stage):
        return "locked" if doc.freeze_locked(node.layer.id, node.name) else "box"
    if doc.frozen_above(node.id):
        return "locked"
    return "box" if node.frozen or not weightless(node, doc.layer_info(node.id)) else "none"


def tooltip(doc, layer: LayerSpec, info) -> str:
    head = f"<b>{escape(layer.id)}</b> ({escape(layer.type)})"
    if info is None:
        return head
    if info.error is not None:
        fix = f"<br><b>Fix:</b> {escape(info.error.fix)}" if info.error.fix else ""
        remedy = info.error.remedy
        one_click = (f"<br><b>One-click fix:</b> {escape(remedy.label)} (right-click the row, or Ctrl+.)"
                     if remedy is not None else "")
        return f"{head} cannot work here.<br><b>Problem:</b> {escape(info.error.problem)}{fix}{one_click}"
    if info.out_shape is None:
        first = doc.info.error
        where = f"layer '{first.layer_id}' (row {first.position})" if first else "a layer above"
        return f"{head}: output shape unknown, because {escape(where)} has a problem. Fix that row first."
    kind = catalog.kind(layer.type)
    args = ", ".join(f"{k}={short(v)}" for k, v in info.args.items())
    lines = [f"{head}: {escape(kind.help) if kind else ''}",
             f"input {fmt(info.in_shape)} &rarr; output {fmt(info.out_shape)}",
             f"{info.params or 0:,} parameters ({info.trainable or 0:,} trainable)"]
    if args:
        lines.append(f"arguments: {escape(args)}")
    return "<br>".join(lines)


def strip_cells(doc, strip: Strip) -> list[dict]:
    """A drawing row's cells: empty (the view paints it), but for what it shows (``STRIP_ROLE``),
    so an edit that changes a shape, an id or a problem in the drawing repaints it."""
    parallel = strip.layer
    seen = []
    for branch in parallel.layers:
        rows = []
        for layer in [branch, *branch.layers]:
            info = doc.layer_info(layer.id)
            rows.append((layer.id, layer.type, info.out_shape if info else None, bool(info and info.error)))
        seen.append(tuple(rows))
    info = doc.layer_info(parallel.id)
    what = (strip.row, tuple(seen), key_args_text(parallel), info.out_shape if info else None,
            info.error.problem if info and info.error else None)
    cells: list[dict] = [{} for _ in COLUMNS]
    cells[ID][STRIP_ROLE] = what
    return cells


def stage_cells(doc, stage: Stage) -> list[dict]:
    """Every column's {role: value} for a backbone stage row."""
    info = doc.layer_info(stage.layer.id)
    stage_info = next((s for s in (info.stages if info else []) if s.name == stage.name), None)
    locked = doc.freeze_locked(stage.layer.id, stage.name)
    frozen = bool(locked) or stage.name in stage.layer.frozen_stages
    tip = (f"Stage {stage.name} is frozen with the whole of '{locked}' (unfreeze that row to choose stages)"
           if locked else f"Stage {stage.name} of {stage.layer.id}: freeze it to keep its pretrained weights")
    cells = [{_TIP: tip} for _ in COLUMNS]
    cells[ID][_DISPLAY] = stage.name
    cells[TYPE].update({_DISPLAY: "stage", _FOREGROUND: _brush(theme.MUTED)})
    if stage_info is not None:
        cells[PARAMS].update({_DISPLAY: f"{stage_info.params:,}", _ALIGN: _RIGHT})
    if frozen:
        cells[PARAMS].update({_DECORATION: icons.frozen_icon(), _FOREGROUND: _brush(theme.MUTED)})
    cells[FROZEN][_CHECK] = Qt.CheckState.Checked if frozen else Qt.CheckState.Unchecked
    return cells
