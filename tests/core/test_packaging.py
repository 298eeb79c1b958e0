"""Packaging: a non-editable install finds its resources; desktop files are valid."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return next(out.glob("model_workbench-*.whl"))


def test_wheel_carries_templates_icon_and_entry_point(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("digits_cnn", "digits_mlp", "tabular_mlp", "resnet18_transfer"):
        assert f"workbench_resources/templates/{template}.wbproj" in names
    assert "workbench_resources/workbench.svg" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "workbench = ui.app:main" in zipfile.ZipFile(wheel).read(entry).decode()
    assert not any(n.startswith("tests/") for n in names)


def test_non_editable_install_finds_its_resources(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = (
        "import workbench, workbench.resources as r, workbench.templates as t, ui.app;"
        "print(workbench.__file__); print(r.resource_root()); print(','.join(t.names()));"
        "print(r.resource_path('workbench.svg').is_file())"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    module_file, root, names, icon = result.stdout.split("\n")[:4]
    assert module_file.startswith(str(target))  # not the source tree
    assert root == str(target / "workbench_resources")
    assert {"digits_cnn", "resnet18_transfer"} <= set(names.split(","))
    assert icon == "True"


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
    env = {**os.environ, "PREFIX": str(tmp_path)}
    subprocess.run(["bash", str(ROOT / "packaging" / "install-desktop.sh")], env=env, check=True,
                   capture_output=True, timeout=60)
    desktop = (tmp_path / "applications" / "model-workbench.desktop").read_text()
    exe = next(line for line in desktop.splitlines() if line.startswith("Exec=")).split("=", 1)[1].split()[0]
    assert os.access(exe, os.X_OK) and exe.endswith("workbench")
    assert (tmp_path / "icons/hicolor/scalable/apps/model-workbench.svg").is_file()
    subprocess.run(["bash", str(ROOT / "packaging" / "install-desktop.sh"), "--uninstall"], env=env, check=True,
                   capture_output=True, timeout=60)
    assert not (tmp_path / "applications" / "model-workbench.desktop").exists()
