"""Every bench/ script that needs no Qt runs to its end in quick mode (tiny sizes) and prints
its RESULT line, so a refactoring cannot break a benchmark unnoticed. The ones that need Qt
are run by tests/ui/test_ui_bench_scripts.py (tests/conftest.py splits them)."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_script_runs_in_quick_mode(bench_script, run_bench):
    proc, result = run_bench(bench_script)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result, f"the last line is not 'RESULT name=value ...':\n{proc.stdout[-2000:]}"
    assert all(value is not None for value in result.values()), proc.stdout.splitlines()[-1]
    assert result.get("quick") == "1" and "failed" not in result, proc.stdout.splitlines()[-1]
