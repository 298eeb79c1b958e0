"""Expand into Layers: the stack's context-menu (and Edit menu) action that replaces the
selected torchvision backbone row with the layers it is made of, as one undoable edit
(``ProjectDocument.expand_backbone``; the expansion itself is workbench/model/expand.py).

The action shows only on a backbone row. An architecture that does not map onto the stack
(ViT, DenseNet, ...) is not expanded and the window says why, through ``report``."""
from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QAction

from workbench.errors import WorkbenchError
from workbench.model import catalog, expand


def expand_action(stack, doc, report: Callable[[str], None]) -> QAction:
    """The action, added to ``stack``'s context menu; ``report`` shows a refusal (dialog or status)."""
    action = QAction("E&xpand into Layers", stack)
    action.setStatusTip("Replace the selected torchvision backbone with its layers (Residual blocks for its "
                        "residual stages), the same computation, editable row by row")

    def current_backbone() -> str | None:
        layer_id = stack.current_id()
        layer = doc.spec.find(layer_id) if layer_id else None
        return layer_id if layer is not None and layer.type in catalog.BACKBONES else None

    def sync(*_) -> None:
        layer_id = current_backbone()
        action.setVisible(layer_id is not None)
        reason = expand.why_not(doc.spec.find(layer_id).type) if layer_id else None
        action.setToolTip(f"cannot expand: {reason}" if reason else action.statusTip())

    def run() -> None:
        layer_id = current_backbone()
        if layer_id is None:
            report("select a torchvision backbone row to expand it into layers")
            return
        layer = doc.spec.find(layer_id)
        weights = layer.args.get("weights", "none")
        try:
            ids = doc.expand_backbone(layer_id)
        except WorkbenchError as exc:
            report(str(exc))
            return
        stack.select_ids(ids[:1])
        note = (f"; its weights ({weights}) are not carried over: the layers start from random weights"
                if weights != "none" else "")
        report(f"Expanded '{layer_id}' ({layer.type}) into {len(ids)} rows (Undo puts it back){note}")

    action.triggered.connect(run)
    stack.currentLayerChanged.connect(sync)
    doc.changed.connect(sync)
    stack.addAction(action)
    sync()
    return action
