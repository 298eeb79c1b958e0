"""Every bench/ script that needs Qt (the window, the plots) runs to its end in quick mode
(tiny sizes, offscreen) and prints its RESULT line. The ones without Qt are run by
tests/core/test_bench_scripts.py (tests/conftest.py splits them)."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_script_runs_in_quick_mode(bench_script, quick_bench_result):
    quick_bench_result(bench_script)
