"""The user's Python files a project runs: Custom layers' ``file`` and the custom source's
``data.custom_file``.

A project file may name them relative to its own folder. ``resolve`` makes them absolute when
the file loads (so the model and the data read the same file wherever the command runs), and
``relative_json`` writes a file inside the project's folder back relative when it saves, so a
project folder can move. ``files`` lists them for the trust prompt and ``--trust-code``
(workbench.user_code): nothing here imports them.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from workbench.model import custom


def files(project) -> list[Path]:
    """The Python files the project would run (absolute, once each, in order: layers, then data)."""
    out = custom.files(layer.args for _, layer in project.model.walk() if layer.type == custom.NAME)
    data = project.data
    if data.source == "custom" and data.custom_file:
        path = Path(data.custom_file).expanduser().resolve()
        if path not in out:
            out.append(path)
    return out


def _absolute(name: str, folder: Path) -> str:
    path = Path(name).expanduser()
    return str(path if path.is_absolute() else (folder / path).resolve())


def resolve(project, folder: Path) -> None:
    """Make the project's code files absolute, a relative one read against ``folder`` (the
    project file's folder); called once by the loader on the project it just made."""
    for _, layer in project.model.walk():
        if layer.type == custom.NAME and isinstance(layer.args.get("file"), str):
            layer.args = {**layer.args, "file": _absolute(layer.args["file"], folder)}
    if project.data.custom_file:
        project.data = replace(project.data, custom_file=_absolute(project.data.custom_file, folder))


def relative_json(doc: dict, folder: Path) -> dict:
    """The project's JSON with each code file inside ``folder`` written relative to it."""
    def rel(name):
        if not isinstance(name, str) or not os.path.isabs(name):
            return name
        try:
            return Path(name).relative_to(folder.resolve()).as_posix()
        except ValueError:
            return name

    def layers(items):
        out = []
        for item in items:
            item = dict(item)
            if item.get("type") == custom.NAME and isinstance(item.get("args"), dict):
                item["args"] = {**item["args"], "file": rel(item["args"].get("file"))}
            if isinstance(item.get("layers"), list):
                item["layers"] = layers(item["layers"])
            out.append(item)
        return out

    doc = dict(doc)
    if isinstance(doc.get("model"), dict):
        doc["model"] = {**doc["model"], "layers": layers(doc["model"].get("layers", []))}
    if isinstance(doc.get("data"), dict) and doc["data"].get("custom_file"):
        doc["data"] = {**doc["data"], "custom_file": rel(doc["data"]["custom_file"])}
    return doc
