"""No text from a project file runs as code in the generated Python source.

The name, description, layer ids, the class name option and the target path all reach the
generated file or its verification. Each is tried with quotes, triple quotes, newlines and
backslashes that would end a docstring and run a command if pasted raw.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from workbench.export import python_source as export_source
from workbench.model.spec import LayerSpec, ModelSpec


def _payloads(marker) -> list[str]:
    touch = f'__import__("pathlib").Path({str(marker)!r}).touch()'
    return [
        f'Digits """; {touch}; """',
        f"Digits '''; {touch}; '''",
        f'Digits """\n{touch}\n"""',
        f'x\\""" + {touch} + """',
        f"end\\\n{touch}",
        f'\\N{{x}}\\x00 \\"""{touch}#',
        f'\n"""\nimport os; os.system("touch {marker}")\n#',
        "\ud800 lone surrogate \x1b[31m and an escape",
    ]


def _spec(layer_id: str = "fc") -> ModelSpec:
    return ModelSpec((1, 8, 8), [LayerSpec("flat", "Flatten"), LayerSpec(layer_id, "Linear", {"out_features": 10})])


def _only_expected_code(source: str) -> None:
    """Docstrings hold no quotes or newlines from the name, and the file is still what the
    generator writes: no statement beyond the helpers, the class and its functions."""
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    assert doc is not None and doc.splitlines()[0].endswith("Needs only PyTorch.")
    names = [type(node).__name__ for node in tree.body]
    assert names[0] == "Expr"  # the docstring
    assert set(names[1:]) <= {"Import", "ImportFrom", "Assign", "ClassDef", "FunctionDef", "If"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"__import__", "exec", "eval", "open"}, ast.unparse(node)


def test_project_text_never_becomes_code_in_generate(tmp_path):
    marker = tmp_path / "PWNED"
    for text in _payloads(marker):
        source = export_source.generate(_spec(), name=text, cls=text)
        _only_expected_code(source)
        namespace: dict = {}
        exec(compile(source, "model.py", "exec"), namespace)  # the file as anyone imports it
        assert not marker.exists(), text
        line = export_source.doc_text(text)
        assert not any(c in line for c in "\"'\\\n\r") and line.isprintable()


def test_odd_layer_ids_are_written_through_repr(tmp_path, monkeypatch):
    """Ids the loader refuses can still reach the generator from code: they go through repr.
    (Module names cannot hold a dot, so the hostile id reaches os.system through getattr.)"""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    hostile = 'fc=None;getattr(__import__("os"),"system")("touch PWNED")#'
    for layer_id in ["conv1\n", hostile, "a'b\"c\\", 'x"""\n"""']:
        source = export_source.generate(_spec(layer_id), name="m")
        _only_expected_code(source)
        namespace: dict = {}
        exec(compile(source, "model.py", "exec"), namespace)
        assert layer_id in dict(namespace["build_model"]().named_children())
        assert not marker.exists(), layer_id


@pytest.mark.slow
def test_exporting_a_hostile_project_runs_nothing(tmp_path):
    """The issue's reproduction: `workbench export FILE --format python` on a project whose
    name and description would run a command; verification imports the file in a fresh
    process, and importing it again must run nothing either."""
    marker = tmp_path / "PWNED"
    payload = _payloads(marker)[0]
    project = {"format": "model-workbench/project", "version": 1, "name": payload, "description": payload,
               "model": {"input": {"shape": [1, 8, 8]},
                         "layers": [{"id": "flat", "type": "Flatten"},
                                    {"id": "fc", "type": "Linear", "args": {"out_features": 10}}]}}
    path = tmp_path / "evil.wbproj"
    path.write_text(json.dumps(project))
    target = tmp_path / 'out"""x'  # a custom path with quotes: the module name falls back to "model"
    proc = subprocess.run([sys.executable, "-m", "workbench", "export", str(path), "--format", "python",
                           "-o", str(target)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "verification: passed" in proc.stdout
    written = target.with_name(target.name + ".py")
    source = written.read_text()
    _only_expected_code(source)
    subprocess.run([sys.executable, "-I", "-c", f"import runpy; runpy.run_path({str(written)!r})"],
                   capture_output=True, timeout=120, check=True)
    assert not marker.exists()
