"""Every bench/ script that needs no Qt runs to its end in quick mode (tiny sizes) and prints
its RESULT line, so a refactoring cannot break a benchmark unnoticed. The ones that need Qt
are run by tests/ui/test_ui_bench_scripts.py (tests/conftest.py splits them)."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_script_runs_in_quick_mode(bench_script, quick_bench_result):
    quick_bench_result(bench_script)
