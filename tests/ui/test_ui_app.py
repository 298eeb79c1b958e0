"""The launcher without a display: one line saying what to do, exit 2, and Qt never loaded."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_display_the_window_command_explains_and_exits_2():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    code = ("import sys; from ui.app import main; rc = main([]); "
            "print('qt loaded' if 'PySide6.QtWidgets' in sys.modules else 'qt not loaded'); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "xvfb-run" in lines[0] and lines[0].startswith("error:")
    assert run.stdout.strip() == "qt not loaded"
