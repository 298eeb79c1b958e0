"""Layers on the system clipboard: Edit > Cut / Copy / Paste, between windows and projects.

The clipboard holds ``{"layers": [...]}``: the layers exactly as a project file writes them
under ``model.layers`` (``LayerSpec.to_json``), nested layers of a block included. It goes on
the clipboard twice: under our own MIME type ``LAYERS_MIME`` and as plain text, so a text
editor receives JSON that can be pasted into a project file by hand. Paste reads our MIME
type first, else the text; it accepts that object, a bare list of layers, a model object
(``{"input": ..., "layers": ...}``) or a whole project file. Everything is checked by the code
that checks project files (``spec.read_json`` for the JSON limits, ``spec.model_from_json`` for
each layer's id, type and arguments), so what a project file refuses, Paste refuses, with the
same message naming the layer and the field. Where the layers land is the document's business
(``ProjectDocument.paste``: fresh ids for clashing ones, ``spec.MAX_DEPTH`` where they land).
"""
from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QClipboard

from workbench.errors import Problem, SpecError, WorkbenchError
from workbench.model.spec import LayerSpec, model_from_json, read_json
from workbench.project import project_file

LAYERS_MIME = "application/x-workbench-layers+json"
SOURCE = "the clipboard"


def layers_text(layers: list[LayerSpec]) -> str:
    """The clipboard's JSON for layers: the project file's layer format under "layers"."""
    return json.dumps({"layers": [layer.to_json() for layer in layers]}, indent=2)


def layers_mime(layers: list[LayerSpec]) -> QMimeData:
    text = layers_text(layers)
    data = QMimeData()
    data.setData(LAYERS_MIME, text.encode("utf-8"))
    data.setText(text)
    return data


def put(clipboard: QClipboard, layers: list[LayerSpec]) -> None:
    clipboard.setMimeData(layers_mime(layers))


def read(mime: QMimeData | None) -> list[LayerSpec]:
    """The layers the clipboard holds, checked as a project file's are; a WorkbenchError that
    says why when it holds none or a layer a project file would refuse."""
    if mime is not None and mime.hasFormat(LAYERS_MIME):
        raw = bytes(mime.data(LAYERS_MIME).data())
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkbenchError(f"{SOURCE} holds layer data that is not UTF-8 text (byte {exc.start + 1}); "
                                 "copy the layers again") from None
    elif mime is not None and mime.hasText():
        text = mime.text()
    else:
        raise WorkbenchError(f"{SOURCE} holds no layers (copy layers with Ctrl+C in the layer list first)")
    return parse(text)


def parse(text: str) -> list[LayerSpec]:
    """Layers from clipboard text (see the module's docstring for what is accepted)."""
    if not text.strip():
        raise WorkbenchError(f"{SOURCE} is empty; copy layers with Ctrl+C in the layer list first")
    if text.lstrip()[:1] not in ("{", "["):
        raise WorkbenchError(f"{SOURCE} holds text, not layers: {_preview(text)}; copy layers with Ctrl+C "
                             "in the layer list (the clipboard then holds their JSON)")
    data = read_json(text, SOURCE)
    items, model_path = _layer_list(data)
    if not items:
        raise WorkbenchError(f"{SOURCE} holds an empty list of layers")
    # the model check wants an input; its shape plays no part in checking layers
    model = {"input": {"shape": [1]}, "layers": items}
    if isinstance(data, list):  # a bare list: name places as "$[0].type", as they are in the text
        try:
            return model_from_json(model, "", SOURCE).layers
        except SpecError as exc:
            raise SpecError([Problem("$" + p.path.removeprefix(".layers"), p.message, p.plain)
                             for p in exc.problems], SOURCE) from None
    return model_from_json(model, model_path, SOURCE).layers


def _layer_list(data: Any) -> tuple[list, str]:
    """The list of layer objects in clipboard JSON, and the JSON path of the object holding it."""
    if isinstance(data, list):
        return data, "$"
    if not isinstance(data, dict):
        raise SpecError([Problem("$", 'must be {"layers": [...]} with layers as a project file writes them')],
                        SOURCE)
    if data.get("format") == project_file.FORMAT:
        data, path = data.get("model"), "$.model"
        if not isinstance(data, dict):
            raise SpecError([Problem(path, "this project file has no model to paste layers from")], SOURCE)
    else:
        path = "$"
    if not isinstance(data.get("layers"), list):
        raise SpecError([Problem(f"{path}.layers", 'must be a list of layers, as in {"layers": [{"id": "fc", '
                                 '"type": "Linear", "args": {"out_features": 10}}]}')], SOURCE)
    return data["layers"], path


def refusal(exc: WorkbenchError) -> str:
    """Why Paste refused, on one line for the status bar: the first problem, and how many more."""
    if isinstance(exc, SpecError) and len(exc.problems) > 1:
        more = len(exc.problems) - 1
        return f"Cannot paste: {SOURCE}: {exc.problems[0]} (and {more} more problem{'s' if more > 1 else ''})"
    return f"Cannot paste: {exc}"


def _preview(text: str, limit: int = 40) -> str:
    line = " ".join(text.split())
    return repr(line if len(line) <= limit else line[:limit] + "...")
