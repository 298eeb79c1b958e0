"""Packaging: the wheel builds without warnings and carries every package; a non-editable
install finds its icons, stylesheet and templates; one icon, one version; desktop files are valid."""
from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


SOURCES = ("pyproject.toml", "README.md", "workbench", "ui", "resources")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The wheel, built from a copy of the sources (so no build/ folder lands in the checkout and
    no stale build/lib can slip into it), and what the build printed."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(src)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return next(out.glob("model_workbench-*.whl")), result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(built):
    return built[0]


def test_the_wheel_builds_without_a_warning(built):
    _, output = built
    warnings = [line for line in output.splitlines() if "warn" in line.lower()]
    assert not warnings, output


def test_wheel_carries_templates_icon_and_entry_point(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("digits_cnn", "digits_mlp", "tabular_mlp", "resnet18_transfer"):
        assert f"workbench_resources/templates/{template}.wbproj" in names
    assert "workbench_resources/icons/workbench.svg" in names
    assert "workbench_resources/styles/workbench.qss" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "workbench = ui.app:main" in zipfile.ZipFile(wheel).read(entry).decode()
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_carries_every_package_of_the_source_tree(wheel):
    """[tool.setuptools] packages is a list: a subpackage added on disk must be added there too."""
    names = set(zipfile.ZipFile(wheel).namelist())
    on_disk = sorted(init.relative_to(ROOT).as_posix() for top in ("workbench", "ui")
                     for init in (ROOT / top).rglob("__init__.py"))
    missing = [init for init in on_disk if init not in names]
    assert not missing, f"add these packages to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_one_app_icon_and_one_version():
    icons = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "resources").rglob("*.svg"))
    assert icons == ["resources/icons/workbench.svg"]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "workbench.__version__"}
    import workbench
    metainfo = ROOT / "packaging" / "io.github.model_workbench.Workbench.metainfo.xml"
    import xml.etree.ElementTree as ET
    newest = ET.parse(metainfo).getroot().find("releases/release")
    assert newest.get("version") == workbench.__version__, "add a <release> for the new version to the metainfo"


def test_non_editable_install_finds_its_resources(wheel, tmp_path):
    """Installed from the wheel and run from another folder: the window (stylesheet, app icon),
    the templates and the version all come from the install, not from the source tree."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = """if True:
        import importlib.metadata, json, sys
        import workbench, workbench.resources as r
        from workbench.project import templates
        from PySide6.QtWidgets import QApplication
        from ui.common import icons
        from ui.main_window import MainWindow
        app = QApplication([])
        window = MainWindow(project=templates.load("digits_cnn"))
        print(json.dumps({
            "module": workbench.__file__, "ui": sys.modules["ui"].__file__, "root": str(r.resource_root()),
            "templates": templates.names(), "icon": str(r.resource_path("icons", "workbench.svg")),
            "icon_drawn": not icons.app_icon().pixmap(32, 32).isNull(),
            "window_icon": not window.windowIcon().pixmap(32, 32).isNull(),
            "style": str(r.resource_path("styles", "workbench.qss")), "window_style": window.styleSheet(),
            "version": workbench.__version__, "installed": importlib.metadata.version("model-workbench"),
            "loaded_from": sorted({str(getattr(m, "__file__", None)) for name, m in list(sys.modules.items())
                                   if name.split(".")[0] in ("workbench", "ui", "workbench_resources")}),
        }))
        window.close()
    """
    env = {**os.environ, "PYTHONPATH": str(target), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    root = target / "workbench_resources"
    assert found["module"].startswith(str(target)) and found["ui"].startswith(str(target))  # not the source tree
    elsewhere = [f for f in found["loaded_from"] if not f.startswith(str(target))]
    assert not elsewhere, f"modules loaded from outside the install (missing from the wheel?): {elsewhere}"
    assert found["root"] == str(root)
    assert {"digits_cnn", "digits_mlp", "tabular_mlp", "resnet18_transfer"} <= set(found["templates"])
    assert found["icon"] == str(root / "icons" / "workbench.svg") and Path(found["icon"]).is_file()
    assert found["icon_drawn"] and found["window_icon"]
    assert found["style"] == str(root / "styles" / "workbench.qss")
    assert found["window_style"] == (root / "styles" / "workbench.qss").read_text(encoding="utf-8") != ""
    assert found["version"] == found["installed"]


def test_bundle_layout_is_found_through_meipass(tmp_path, monkeypatch):
    from workbench import resources
    bundled = tmp_path / "workbench_resources"
    shutil.copytree(ROOT / "resources", bundled)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resource_root() == bundled
    assert resources.resource_path("templates", "digits_cnn.wbproj").is_file()


def test_desktop_entry_is_valid_and_launches_workbench():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(ROOT / "packaging" / "model-workbench.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Exec"].split()[0] == "workbench"
    assert section["Icon"] == "model-workbench" and "application/x-model-workbench" in section["MimeType"]
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run([validator, str(ROOT / "packaging" / "model-workbench.desktop")],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_appstream_metainfo_validates():
    path = ROOT / "packaging" / "io.github.model_workbench.Workbench.metainfo.xml"
    import xml.etree.ElementTree as ET
    component = ET.parse(path).getroot()
    assert component.findtext("launchable") == "model-workbench.desktop"
    assert component.find("provides/binary").text == "workbench"
    cli = shutil.which("appstreamcli")
    if cli:
        result = subprocess.run([cli, "validate", "--no-net", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_install_desktop_script_puts_workbench_in_the_menu(tmp_path):
    # the `workbench` next to this Python (a checkout without its own .venv, e.g. a git worktree)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PREFIX": str(tmp_path), "PATH": path}
    subprocess.run(["bash", str(ROOT / "packaging" / "install-desktop.sh")], env=env, check=True,
                   capture_output=True, timeout=60)
    desktop = (tmp_path / "applications" / "model-workbench.desktop").read_text()
    exe = next(line for line in desktop.splitlines() if line.startswith("Exec=")).split("=", 1)[1].split()[0]
    assert os.access(exe, os.X_OK) and exe.endswith("workbench")
    assert (tmp_path / "icons/hicolor/scalable/apps/model-workbench.svg").is_file()
    subprocess.run(["bash", str(ROOT / "packaging" / "install-desktop.sh"), "--uninstall"], env=env, check=True,
                   capture_output=True, timeout=60)
    assert not (tmp_path / "applications" / "model-workbench.desktop").exists()
