"""The export formats, in the order the dialog lists them and ``export_all`` writes them.

Adding a format: describe it as a ``Format`` (base.py) in its writer module beside this one,
with the writer and verifier functions, and add one ``register_format`` line below. A test or
a plugin registers one at run time the same way (and removes it with ``unregister_format``).
"""
from __future__ import annotations

from workbench.errors import WorkbenchError
from workbench.export import onnx_format, python_source, torch_formats
from workbench.export.base import Format

FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Offer ``fmt`` to export, export_all, the CLI and the dialog."""
    if fmt.key in FORMATS:
        raise ValueError(f"export format {fmt.key!r} is registered already")
    FORMATS[fmt.key] = fmt
    return fmt


def unregister_format(key: str) -> None:
    """Forget a format added with ``register_format`` (tests, plugins)."""
    del FORMATS[key]


def get(key: str) -> Format:
    """The format named ``key``; a WorkbenchError listing the choices for any other name."""
    if key not in FORMATS:
        raise WorkbenchError(f"unknown export format {key!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[key]


register_format(torch_formats.STATE_DICT)
register_format(torch_formats.SAFETENSORS)
register_format(torch_formats.TORCHSCRIPT)
register_format(onnx_format.ONNX)
register_format(torch_formats.PT2)
register_format(python_source.PYTHON)
