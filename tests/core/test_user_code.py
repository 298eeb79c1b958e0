"""Code a user brings: the trust store, importing a class with errors at the file's line, the
Custom layer, the custom Dataset, --trust-code and the exports (issues 14 §4 and 15 §4)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from workbench import user_code
from workbench.data.bundle import load_data
from workbench.errors import WorkbenchError
from workbench.model import build
from workbench.project import code_refs, project_file as project

from tests.core.user_code_files import (custom_data_project, custom_layer_project, write_blocks,
                                        write_dataset)


@pytest.fixture(autouse=True)
def _own_trust_store(tmp_path, monkeypatch):
    monkeypatch.setenv(user_code.TRUST_FILE_ENV, str(tmp_path / "config" / "trusted.json"))
    user_code.revoke_grants()
    yield
    user_code.revoke_grants()


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def one_error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---------------------------------------------------------------- trust store

def test_trust_is_kept_by_path_and_content_and_an_edited_file_asks_again(tmp_path):
    file = write_blocks(tmp_path)
    assert not user_code.trusted(file)
    user_code.trust([file])
    store = json.loads(user_code.store_path().read_text())
    assert store["files"] == {str(file.resolve()): user_code.digest(file)}
    assert user_code.trusted(file) and user_code.untrusted([file]) == []
    file.write_text(file.read_text() + "\n# edited\n")
    assert not user_code.trusted(file)
    assert user_code.untrusted([file]) == [file.resolve()]
    with pytest.raises(user_code.UntrustedCode, match="blocks.py"):
        user_code.load_class(file, "Block", nn.Module)


def test_the_store_lives_in_the_config_folder_unless_the_env_var_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv(user_code.TRUST_FILE_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_code.store_path() == tmp_path / "xdg" / "model-workbench" / "trusted.json"
    file = write_blocks(tmp_path)
    user_code.trust([file])
    assert (tmp_path / "xdg" / "model-workbench" / "trusted.json").is_file()
    user_code.forget([file])
    assert not user_code.trusted(file)


def test_a_grant_is_for_this_process_only(tmp_path):
    file = write_blocks(tmp_path)
    user_code.grant([file])
    assert user_code.trusted(file)
    assert not user_code.store_path().exists()


def test_nothing_imports_an_untrusted_file(tmp_path):
    file = write_blocks(tmp_path)
    with pytest.raises(user_code.UntrustedCode) as caught:
        user_code.load_class(file, "Block", nn.Module)
    assert caught.value.files == [file.resolve()]
    assert not (tmp_path / "IMPORTED").exists()


# ---------------------------------------------------------------- load_class errors

def test_a_syntax_error_names_the_file_and_the_line(tmp_path):
    file = tmp_path / "bad.py"
    file.write_text("import torch\n\n\nclass A(:\n    pass\n")
    user_code.grant([file])
    with pytest.raises(user_code.UserCodeError) as caught:
        user_code.load_class(file, "A", nn.Module)
    assert caught.value.line == 4
    assert str(caught.value).startswith(f"{file.resolve()}, line 4: SyntaxError")


def test_a_module_raising_on_import_names_the_line_and_the_message(tmp_path):
    file = tmp_path / "fails.py"
    file.write_text("x = 1\ny = {}\nz = y['missing']\n")
    user_code.grant([file])
    with pytest.raises(user_code.UserCodeError, match=r"fails.py, line 3: does not import: KeyError: 'missing'"):
        user_code.load_class(file, "A")


def test_a_missing_class_and_a_class_of_the_wrong_base_are_named(tmp_path):
    file = write_blocks(tmp_path)
    user_code.grant([file])
    with pytest.raises(user_code.UserCodeError, match=r"has no class 'Blok' \(it defines: Block, Broken, "):
        user_code.load_class(file, "Blok", nn.Module)
    line = file.read_text().splitlines().index("class NotAModule:") + 1
    with pytest.raises(user_code.UserCodeError,
                       match=rf"line {line}: NotAModule is not a subclass of torch.nn.Module$"):
        user_code.load_class(file, "NotAModule", nn.Module)
    assert user_code.load_class(file, "Block", nn.Module).__name__ == "Block"
    assert (tmp_path / "IMPORTED").exists()


def test_each_file_imports_under_its_own_module_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = write_blocks(tmp_path / "a"), write_blocks(tmp_path / "b")
    b.write_text(b.read_text().replace("width=4", "width=5"))
    user_code.grant([a, b])
    ca, cb = user_code.load_class(a, "Block", nn.Module), user_code.load_class(b, "Block", nn.Module)
    assert ca is not cb and ca.__module__ != cb.__module__
    assert user_code.load_class(a, "Block", nn.Module) is ca  # imported once


# ---------------------------------------------------------------- the Custom layer

def _layer_spec(tmp_path, cls="Block", **extra):
    proj = project.load(custom_layer_project(tmp_path, cls))
    proj.model.layers[0].__dict__.update(extra)
    return proj


def test_the_custom_layer_shape_params_and_parts_come_from_the_class(tmp_path):
    proj = project.load(custom_layer_project(tmp_path))
    assert proj.model.layers[0].args["file"] == str(tmp_path.resolve() / "blocks.py")  # relative: from the folder
    user_code.grant(code_refs.files(proj))
    info = build.infer(proj.model)
    assert info.ok, info.error
    row = info.layers[0]
    assert row.out_shape == (4, 8, 8) and row.params == 4 * 9 + 4
    assert [(s.name, s.params) for s in row.stages] == [("conv", 40), ("act", 0)]
    model = build.build_model(proj.model)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_a_custom_layers_children_freeze_like_backbone_stages(tmp_path):
    path = custom_layer_project(tmp_path)
    doc = json.loads(path.read_text())
    doc["model"]["layers"][0]["frozen_stages"] = ["conv"]
    path.write_text(json.dumps(doc))
    proj = project.load(path)
    user_code.grant(code_refs.files(proj))
    info = build.infer(proj.model)
    assert info.layers[0].trainable == 0 and info.layers[0].stages[0].frozen
    model = build.build_model(proj.model)
    assert not any(p.requires_grad for p in model.mine.conv.parameters())
    doc["model"]["layers"][0]["frozen_stages"] = ["head"]
    path.write_text(json.dumps(doc))
    proj = project.load(path)
    error = build.infer(proj.model).error
    assert "layer 'mine' (Custom, #1): has no part 'head' to freeze (its parts: conv, act)" in str(error)


def test_a_module_that_fails_on_meta_is_inferred_on_the_cpu_and_says_so(tmp_path):
    proj = project.load(custom_layer_project(tmp_path, "NeedsValues"))
    user_code.grant(code_refs.files(proj))
    proj.model.layers[0].args = {**proj.model.layers[0].args, "kwargs": {}}
    info = build.infer(proj.model)
    row = info.layers[0]
    assert row.error is None and row.out_shape == (10,)
    assert any("inferred on the CPU with a zero input" in a for a in row.advice)


def test_a_class_raising_in_init_names_the_layer_the_file_and_the_line(tmp_path):
    proj = project.load(custom_layer_project(tmp_path, "Broken"))
    user_code.grant(code_refs.files(proj))
    error = build.infer(proj.model).error
    line = write_blocks(tmp_path).read_text().splitlines().index(
        '        raise ValueError(f"width {width} is not supported")') + 1
    assert str(error).startswith(f"layer 'mine' (Custom, #1): {(tmp_path / 'blocks.py').resolve()}, line {line}: "
                                 "Broken(**kwargs) raised: ValueError: width 4 is not supported")


def test_an_untrusted_custom_layer_is_the_rows_error_and_nothing_runs(tmp_path):
    proj = project.load(custom_layer_project(tmp_path))
    error = build.infer(proj.model).error
    assert "layer 'mine' (Custom, #1): runs code from" in str(error) and "not trusted" in str(error)
    assert not (tmp_path / "IMPORTED").exists()


def test_saving_writes_a_file_inside_the_project_folder_relative(tmp_path):
    path = custom_layer_project(tmp_path)
    proj = project.load(path)
    project.save(proj)
    assert json.loads(path.read_text())["model"]["layers"][0]["args"]["file"] == "blocks.py"
    (tmp_path / "elsewhere").mkdir()
    project.save(proj, tmp_path / "elsewhere" / "moved.wbproj")
    moved = json.loads((tmp_path / "elsewhere" / "moved.wbproj").read_text())
    assert moved["model"]["layers"][0]["args"]["file"] == str((tmp_path / "blocks.py").resolve())


# ---------------------------------------------------------------- the custom Dataset

def test_the_task_of_a_custom_dataset_comes_from_its_first_items(tmp_path):
    proj = project.load(custom_data_project(tmp_path))
    user_code.grant(code_refs.files(proj))
    bundle = load_data(proj.data)
    task = bundle.task
    assert task.kind == "classification" and task.num_classes == 2 and task.input_shape == (1, 8, 8)
    assert task.input_dtype == "float32" and task.train_size + task.val_size == 64
    x, y = bundle.train[0]
    assert x.dtype == torch.float32 and y.dtype == torch.long


def test_attributes_the_class_defines_give_the_classes(tmp_path):
    proj = project.load(custom_data_project(tmp_path, "Named"))
    user_code.grant(code_refs.files(proj))
    assert load_data(proj.data).task.class_names == ("dark", "bright", "unused")


def test_float_targets_make_a_regression(tmp_path):
    proj = project.load(custom_data_project(tmp_path, "Values"))
    user_code.grant(code_refs.files(proj))
    task = load_data(proj.data).task
    assert task.kind == "regression" and task.input_shape == (3,)


def test_a_dataset_raising_at_item_3_names_the_file_the_line_and_index_3(tmp_path):
    proj = project.load(custom_data_project(tmp_path, kwargs={"fail_at": 3}))
    user_code.grant(code_refs.files(proj))
    with pytest.raises(user_code.UserCodeError) as caught:
        load_data(proj.data)
    text = str(caught.value)
    line = write_dataset(tmp_path).read_text().splitlines().index(
        '            raise RuntimeError(f"cannot read item {i}")') + 1
    assert text.startswith(f"{(tmp_path / 'squares.py').resolve()}, line {line}: Squares[3] (item index 3) raised: "
                           "RuntimeError: cannot read item 3")


def test_an_item_failing_during_training_names_its_index(tmp_path):
    proj = project.load(custom_data_project(tmp_path, kwargs={"n": 100, "fail_at": 90}))
    user_code.grant(code_refs.files(proj))
    bundle = load_data(proj.data)
    with pytest.raises(user_code.UserCodeError, match=r"Squares\[90\] \(item index 90\) raised"):
        for ds in (bundle.train, bundle.val):
            for i in range(len(ds)):
                ds[i]


def test_the_project_file_asks_for_the_custom_sources_file_and_class(tmp_path):
    path = custom_data_project(tmp_path)
    doc = json.loads(path.read_text())
    del doc["data"]["custom_class"]
    path.write_text(json.dumps(doc))
    with pytest.raises(WorkbenchError, match=r"data.custom_class: the 'custom' source needs"):
        project.load(path)


def test_a_dataset_class_must_be_a_dataset(tmp_path):
    proj = project.load(custom_data_project(tmp_path))
    user_code.grant(code_refs.files(proj))
    write_dataset(tmp_path).write_text(write_dataset(tmp_path).read_text() + "\nclass Plain:\n    pass\n")
    user_code.grant(code_refs.files(proj))
    from dataclasses import replace
    with pytest.raises(user_code.UserCodeError, match="Plain is not a subclass of torch.utils.data.Dataset"):
        load_data(replace(proj.data, custom_class="Plain"))
    assert issubclass(user_code.load_class(proj.data.custom_file, "Squares", Dataset), Dataset)


# ---------------------------------------------------------------- headless: --trust-code

@pytest.mark.parametrize("command", ["summary", "train", "export", "lr-find", "explain", "sweep"])
def test_a_command_refuses_code_without_trust_code_and_runs_nothing(tmp_path, command):
    path = custom_layer_project(tmp_path)
    extra = {"export": ["-f", "state_dict", "-o", tmp_path / "m.pth"], "sweep": ["--trials", "1"],
             "explain": ["--weights", tmp_path / "w.pth", "--index", "0", "-o", tmp_path / "e.png"]}.get(command, [])
    line = one_error_line(cli(command, path, *extra, timeout=180))
    assert str((tmp_path / "blocks.py").resolve()) in line and "pass --trust-code" in line
    assert not (tmp_path / "IMPORTED").exists()


def test_a_custom_dataset_project_is_refused_without_trust_code_too(tmp_path):
    line = one_error_line(cli("train", custom_data_project(tmp_path)))
    assert str((tmp_path / "squares.py").resolve()) in line and "--trust-code" in line


def test_with_trust_code_summary_and_training_run(tmp_path):
    result = cli("summary", custom_layer_project(tmp_path), "--trust-code", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["layers"]
    assert rows[0]["type"] == "Custom" and rows[0]["output_shape"] == [4, 8, 8]
    assert (tmp_path / "IMPORTED").exists()
    assert not user_code.store_path().exists()  # --trust-code trusts for that command only
    trained = cli("train", custom_data_project(tmp_path), "--trust-code", "--quiet")
    assert trained.returncode == 0, trained.stderr


# ---------------------------------------------------------------- exports

def _export(tmp_path, fmt, **options):
    from workbench.export.base import ExportOptions
    from workbench.export.exporter import export

    proj = project.load(custom_layer_project(tmp_path))
    user_code.grant(code_refs.files(proj))
    model = build.build_model(proj.model)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    suffix = {"python": ".py", "state_dict": ".pth", "torchscript": ".pt", "pt2": ".pt2", "onnx": ".onnx",
              "safetensors": ".safetensors"}[fmt]
    return model, export(model, proj.model, fmt, out / f"model{suffix}", ExportOptions(**options))


def _run_isolated(py: Path, cwd: Path) -> subprocess.CompletedProcess:
    code = ("import importlib.util, sys, torch\n"
            f"spec = importlib.util.spec_from_file_location('exported', {str(py)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print(tuple(m.build_model()(torch.zeros(2, 1, 8, 8)).shape))\n")
    return subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_python_export_copies_the_file_beside_it_and_runs_in_a_fresh_isolated_python(tmp_path):
    _, result = _export(tmp_path, "python")
    assert result.ok and result.verification.passed, result.error
    copy = tmp_path / "out" / "model_blocks.py"
    assert copy.read_text() == (tmp_path / "blocks.py").read_text() and copy in result.files
    (tmp_path / "blocks.py").unlink()  # the copy is all it needs
    run = _run_isolated(tmp_path / "out" / "model.py", tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(2, 10)"


def test_the_python_export_can_import_the_file_where_it_lives(tmp_path):
    _, result = _export(tmp_path, "python", custom_code="import")
    assert result.ok and result.verification.passed, result.error
    assert not (tmp_path / "out" / "model_blocks.py").exists()
    assert str((tmp_path / "blocks.py").resolve()) in (tmp_path / "out" / "model.py").read_text()
    run = _run_isolated(tmp_path / "out" / "model.py", tmp_path / "out")
    assert run.returncode == 0 and run.stdout.strip() == "(2, 10)", run.stderr


@pytest.mark.parametrize("fmt", ["state_dict", "safetensors", "torchscript", "pt2", "onnx"])
def test_every_other_format_verifies_with_a_custom_layer(tmp_path, fmt):
    _, result = _export(tmp_path, fmt)
    assert result.ok, result.error
    if result.verification is not None:
        assert result.verification.passed, result.verification.summary()


def test_an_item_failing_in_a_loader_worker_names_its_index_too(tmp_path):
    from dataclasses import replace

    proj = project.load(custom_data_project(tmp_path, kwargs={"n": 100, "fail_at": 90}))
    user_code.grant(code_refs.files(proj))
    bundle = load_data(replace(proj.data, num_workers=2))
    with pytest.raises(user_code.UserCodeError, match=r"Squares\[90\] \(item index 90\) raised: RuntimeError"):
        for split in ("train", "val"):
            for _ in bundle.loader(split):
                pass


def test_training_on_a_dataset_that_raises_is_one_error_line_naming_the_index(tmp_path):
    line = one_error_line(cli("train", custom_data_project(tmp_path, kwargs={"n": 100, "fail_at": 90}),
                              "--trust-code", "--quiet"))
    assert line.startswith(f"error: {(tmp_path / 'squares.py').resolve()}, line ")
    assert "Squares[90] (item index 90) raised: RuntimeError: cannot read item 90" in line
