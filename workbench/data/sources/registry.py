"""Which reader serves each ``data.source`` name: one line per source.

Adding a source: write its reader (``reader(settings: DataSettings) -> TensorSource |
LazySource``, see base.py) in a module of its family beside this one, and add one
``register_source`` line below. A test or a plugin can register one at run time the same way
(and remove it with ``unregister_source``). ``register_source`` also adds the name to the
project file's choices (``workbench.project.settings``), so projects naming it validate.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.data.sources import custom, idx, images, sklearn, tables
from workbench.data.sources.base import Reader, Source
from workbench.errors import WorkbenchError
from workbench.project import settings as project_settings
from workbench.project.settings import DataSettings


@dataclass(frozen=True)
class SourceEntry:
    name: str  # the data.source value
    reader: Reader
    needs_path: bool = False  # data.path names the file or folder


SOURCES: dict[str, SourceEntry] = {}


def register_source(name: str, reader: Reader, *, needs_path: bool = False) -> SourceEntry:
    """Make ``data.source = name`` read its examples with ``reader(settings)``."""
    if name in SOURCES:
        raise ValueError(f"data source {name!r} is registered already")
    entry = SOURCES[name] = SourceEntry(name, reader, needs_path)
    project_settings.add_data_source(name, needs_path=needs_path)
    return entry


def unregister_source(name: str) -> None:
    """Forget a source added with ``register_source`` (tests, plugins)."""
    del SOURCES[name]
    project_settings.remove_data_source(name)


def read(settings: DataSettings) -> Source:
    """The source a project's data settings name."""
    entry = SOURCES.get(settings.source)
    if entry is None:
        raise WorkbenchError(f"unknown data source {settings.source!r}; choose one of {', '.join(SOURCES)}")
    if entry.needs_path and not settings.path:  # settings changed in the window, not loaded from a file
        raise WorkbenchError(project_settings.path_needed(settings.source))
    return entry.reader(settings)


register_source("digits", sklearn.read_digits)
register_source("iris", sklearn.read_table)
register_source("wine", sklearn.read_table)
register_source("breast_cancer", sklearn.read_table)
register_source("fake", images.read_fake)
register_source("image_folder", images.read_image_folder, needs_path=True)
register_source("csv", tables.read_csv, needs_path=True)
register_source("mnist", idx.read_mnist, needs_path=True)
register_source("fashion_mnist", idx.read_mnist, needs_path=True)
register_source("custom", custom.read_custom)  # your own Dataset class (data.custom_file, custom_class, custom_kwargs)
