"""Find shipped resources (templates, icons, styles) from a source tree, a wheel or a bundle."""
from __future__ import annotations

import sys
from pathlib import Path


def resource_root() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)  # PyInstaller one-folder bundle
    if bundle and (Path(bundle) / "workbench_resources").is_dir():
        return Path(bundle) / "workbench_resources"
    try:
        import workbench_resources  # installed wheel (resources/ is packaged under this name)

        return Path(workbench_resources.__file__).parent
    except ImportError:
        return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resource_root().joinpath(*parts)
