"""Parallel blocks: the project-file JSON, merges and their errors (naming the Parallel, the branch
and the fix), where Branch rows may stand, freezing, costs and the built module."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from workbench.errors import LayerError, SpecError
from workbench.model import build, costs, spec as spec_mod
from workbench.model.spec import MAX_DEPTH, LayerSpec as L, ModelSpec, model_from_json


def conv(layer_id: str, channels: int, k: int = 1) -> L:
    return L(layer_id, "Conv2d", {"out_channels": channels, "kernel_size": k, "padding": k // 2})


def par(merge: str, *branches: L, dim: int | None = None, layer_id: str = "inc") -> L:
    args = {"merge": merge} | ({"dim": dim} if dim is not None else {})
    return L(layer_id, "Parallel", args, layers=list(branches))


def error_of(spec: ModelSpec) -> LayerError:
    err = build.infer(spec).error
    assert err is not None
    with pytest.raises(LayerError):
        build.build_model(spec)
    return err


CONTRACT = {"input": {"shape": [8, 8, 8]}, "layers": [
    {"id": "inc", "type": "Parallel", "args": {"merge": "concat", "dim": 1},
     "layers": [{"id": "inc_a", "type": "Branch", "layers": [
                    {"id": "conv", "type": "Conv2d", "args": {"out_channels": 4, "kernel_size": 1}}]},
                {"id": "inc_b", "type": "Branch", "layers": []}]}]}


def test_the_contracts_json_reads_builds_and_writes_back_unchanged():
    spec = model_from_json(CONTRACT)
    assert spec.to_json() == CONTRACT
    info = build.check(spec)
    assert info.output_shape == (12, 8, 8)
    assert [(r.path, r.type) for r in info.rows()] == [
        ("inc", "Parallel"), ("inc.inc_a", "Branch"), ("inc.inc_a.conv", "Conv2d"), ("inc.inc_b", "Branch")]
    model = build.build_model(spec)
    assert list(model.state_dict()) == ["inc.inc_a.conv.weight", "inc.inc_a.conv.bias"]
    assert isinstance(model.inc, build.Parallel) and [n for n, _ in model.inc.named_children()] == ["inc_a", "inc_b"]
    x = torch.randn(2, 8, 8, 8)
    torch.testing.assert_close(model(x)[:, 4:], x)  # the empty branch is the identity


def test_add_of_unequal_shapes_names_the_parallel_the_branch_and_the_fix():
    spec = ModelSpec((8, 8, 8), [par("add", L("inc_a", "Branch", layers=[conv("c", 32)]),
                                     L("inc_b", "Branch", layers=[conv("d", 16)]))])
    err = error_of(spec)
    assert err.layer_id == "inc" and err.layer_type == "Parallel"
    assert str(err) == ("layer 'inc' (Parallel, #1): branch 'inc_b' gives (16, 8, 8), 'inc_a' (32, 8, 8): add "
                        "needs equal shapes; add a 1x1 Conv2d to 'inc_b' with out_channels 32, or merge by concat")


def test_mean_of_unequal_vectors_suggests_a_linear():
    spec = ModelSpec((6,), [par("mean", L("a", "Branch"), L("b", "Branch", layers=[L("fc", "Linear",
                                                                                      {"out_features": 4})]))])
    msg = str(error_of(spec))
    assert "branch 'b' gives (4,), 'a' (6,): mean needs equal shapes" in msg
    assert "add a Linear to 'b' with out_features 6" in msg


def test_mul_broadcasts_a_gate_and_says_so_but_refuses_sizes_that_cannot_broadcast():
    gate = L("gate", "Branch", layers=[L("pool", "AdaptiveAvgPool2d", {"output_size": 1}), L("sig", "Sigmoid")])
    spec = ModelSpec((8, 5, 5), [par("mul", L("x", "Branch"), gate, layer_id="se")])
    info = build.check(spec)
    assert info.output_shape == (8, 5, 5)
    assert info.layers[0].advice == ["mul broadcasts branch 'gate' (8, 1, 1) to (8, 5, 5)"]
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(build.build_model(spec)(x), x * torch.sigmoid(x.mean((2, 3), keepdim=True)))
    bad = ModelSpec((8, 5, 5), [par("mul", L("x", "Branch"), L("y", "Branch", layers=[conv("c", 4)]),
                                    layer_id="se")])
    msg = str(error_of(bad))
    assert msg.startswith("layer 'se' (Parallel, #1): branch 'y' gives (4, 5, 5), 'x' (8, 5, 5): mul needs equal "
                          "sizes or a size of 1 to broadcast, and dim 1 differs (4 vs 8)")
    assert "add a 1x1 Conv2d to 'y' with out_channels 8" in msg


def test_concat_on_a_dimension_whose_neighbours_differ_names_the_branch_and_the_right_dim():
    spec = ModelSpec((8, 6, 6), [par("concat", L("a", "Branch", layers=[conv("c", 4)]), L("b", "Branch"), dim=2)])
    msg = str(error_of(spec))
    assert ("branch 'b' gives (8, 6, 6), 'a' (4, 6, 6): concat along dim 2 needs equal sizes in every other "
            "dimension, and dim 1 differs (8 vs 4); set dim to 1") in msg
    assert build.check(ModelSpec((8, 6, 6), [par("concat", L("a", "Branch", layers=[conv("c", 4)]), L("b", "Branch"),
                                                 dim=-3)])).output_shape == (12, 6, 6)


@pytest.mark.parametrize("dim, words", [(0, "dim 0 is the batch"), (4, "dim 4 is outside"), (-5, "dim -5 is outside")])
def test_concat_along_the_batch_or_outside_the_outputs_is_refused(dim, words):
    spec = ModelSpec((8, 6, 6), [par("concat", L("a", "Branch"), L("b", "Branch"), dim=dim)])
    msg = str(error_of(spec))
    assert msg.startswith("layer 'inc' (Parallel, #1): " + words)


def test_branches_of_different_ranks_or_value_kinds_cannot_merge():
    spec = ModelSpec((8, 6, 6), [par("concat", L("a", "Branch"), L("b", "Branch", layers=[L("f", "Flatten")]))])
    assert "branch 'b' gives (288,), 'a' (8, 6, 6): concat needs outputs of the same rank" in str(error_of(spec))
    tokens = ModelSpec((5,), [par("add", L("a", "Branch"), L("b", "Branch", layers=[
        L("emb", "Embedding", {"num_embeddings": 9, "embedding_dim": 5})]))], input_dtype="int64")
    assert "branch 'b' gives float32 values but 'a' gives int64" in str(error_of(tokens))


def test_a_branch_outside_a_parallel_is_refused_in_a_file_and_in_a_spec_made_in_code():
    data = {"input": {"shape": [4]}, "layers": [{"id": "lone", "type": "Branch", "layers": []}]}
    with pytest.raises(SpecError, match=r"layer 'lone' \(Branch, #1\): a Branch sits only directly inside a "
                                        "Parallel; put it in a Parallel"):
        model_from_json(data)
    err = error_of(ModelSpec((4,), [L("lone", "Branch")]))
    assert str(err).startswith("layer 'lone' (Branch, #1): a Branch sits only directly inside a Parallel")
    inside_residual = ModelSpec((4,), [L("res", "Residual", layers=[L("lone", "Branch")])])
    assert error_of(inside_residual).layer_id == "lone"


def test_a_parallel_needs_two_branches_and_holds_only_branches():
    one = {"input": {"shape": [4]}, "layers": [{"id": "p", "type": "Parallel", "layers": [
        {"id": "only", "type": "Branch", "layers": []}]}]}
    with pytest.raises(SpecError, match=r"layer 'p' \(Parallel, #1\): a Parallel needs at least two branches, "
                                        "it has 1; add a Branch"):
        model_from_json(one)
    assert "at least two branches, it has 1" in str(error_of(ModelSpec((4,), [par("add", L("only", "Branch"))])))
    loose = ModelSpec((4,), [par("add", L("a", "Branch"), L("fc", "Linear", {"out_features": 4}))])
    err = error_of(loose)
    assert err.layer_id == "fc" and "a Parallel holds only Branch rows, not a Linear; put it inside a Branch" in str(err)
    named = ModelSpec((4,), [par("add", L("a", "Branch"), L("merge", "Branch"))])
    assert "a Branch cannot be called 'merge'" in str(error_of(named))


def test_frozen_parallel_or_branch_freezes_everything_inside():
    def spec(frozen_block: bool, frozen_branch: bool) -> ModelSpec:
        block = par("concat", L("a", "Branch", frozen=frozen_branch, layers=[conv("c", 4)]),
                    L("b", "Branch", layers=[par("add", L("d", "Branch", layers=[conv("e", 2)]),
                                                  L("f", "Branch", layers=[conv("g", 2)]), layer_id="inner")]))
        block.frozen = frozen_block
        return ModelSpec((3, 4, 4), [block, L("flat", "Flatten"), L("fc", "Linear", {"out_features": 2})])

    for frozen_block, frozen_branch in ((True, False), (False, True)):
        s = spec(frozen_block, frozen_branch)
        info = build.check(s)
        model = build.build_model(s)
        total, trainable = build.param_count(model)
        assert (total, trainable) == (info.total_params, info.trainable_params)
        block_params = info.layers[0].params
        frozen_here = block_params if frozen_block else info.layers[0].children[0].params
        assert trainable == total - frozen_here
        assert all(not p.requires_grad for p in (model.inc if frozen_block else model.inc.a).parameters())


def test_a_parallels_cost_row_sums_its_branches():
    s = ModelSpec((3, 8, 8), [par("concat", L("a", "Branch", layers=[conv("c", 4, 3)]),
                                  L("b", "Branch", layers=[conv("d", 2), L("r", "ReLU")]))])
    out = costs.costs(s)
    rows = out.rows
    assert rows["inc"].flops == rows["inc.a"].flops + rows["inc.b"].flops > 0
    assert rows["inc.a"].flops == rows["inc.a.c"].flops
    assert out.flops == rows["inc"].flops


def test_parallel_and_branch_each_count_one_nesting_level():
    inner: L = L("deep", "Linear", {"out_features": 4})
    levels = 1
    while levels + 2 <= MAX_DEPTH:
        inner = par("add", L(f"b{levels}", "Branch", layers=[inner]), L(f"e{levels}", "Branch"), layer_id=f"p{levels}")
        levels += 2
    assert build.infer(ModelSpec((4,), [inner])).ok
    too_deep = par("add", L("bx", "Branch", layers=[inner]), L("ex", "Branch"), layer_id="px")
    data = {"input": {"shape": [4]}, "layers": [too_deep.to_json()]}
    with pytest.raises(SpecError, match=f"layers nest at most {MAX_DEPTH} deep"):
        model_from_json(data)
    assert not build.infer(ModelSpec((4,), [too_deep])).ok


def test_cli_reports_a_merge_that_cannot_fit_in_one_error_line(tmp_path):
    from workbench.project import templates, project_file

    proj = templates.load("digits_cnn")
    data = proj.to_json()
    data["model"] = {"input": {"shape": [1, 8, 8]}, "layers": [
        par("add", L("inc_a", "Branch", layers=[conv("c", 8)]), L("inc_b", "Branch")).to_json(),
        {"id": "flat", "type": "Flatten"}, {"id": "fc", "type": "Linear", "args": {"out_features": 10}}]}
    path = tmp_path / f"p{project_file.SUFFIX}"
    path.write_text(json.dumps(data))
    result = subprocess.run([sys.executable, "-m", "workbench", "summary", str(path)], capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "'inc'" in errors[0] and "branch 'inc_b' gives (1, 8, 8), 'inc_a' (8, 8, 8)" in errors[0]


def test_reserved_branch_names_are_the_parallel_modules_own_attributes():
    assert {"merge", "dim"} == set(spec_mod.BRANCH_RESERVED)
    module = build.Parallel({"a": torch.nn.Identity(), "b": torch.nn.Identity()}, "mean")
    assert all(hasattr(module, name) for name in spec_mod.BRANCH_RESERVED)
