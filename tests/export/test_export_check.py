"""escnet-export check: TensorRT operator support and dynamic-shape hazards on small planted graphs."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from escnet_export.checks.graph_rules import check_graph
from escnet_export.cli import app
from escnet_export.trt.ops import trt_operator_list
from onnx import TensorProto, helper
from typer.testing import CliRunner

runner = CliRunner()
F, I64 = TensorProto.FLOAT, TensorProto.INT64


def model(nodes, inputs, outputs, inits=(), opset: int = 18, domains: tuple[str, ...] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "planted", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets)


def rules(m: onnx.ModelProto) -> dict[str, str]:
    return {f.rule: f.level for f in check_graph(m, "g").findings}


def test_operator_list_is_the_published_one() -> None:
    ops = trt_operator_list()
    assert "onnx-tensorrt" in ops.source and "operators.md" in ops.source
    assert ops.support("LayerNormalization").supported and ops.support("Conv").supported
    assert not ops.support("Det").supported and ops.support("MadeUpOp") is None
    assert ops.support("Relu", domain="com.example") is None


def test_planted_unsupported_op_is_found(tmp_path: Path) -> None:
    det = model(
        [helper.make_node("Relu", ["x"], ["r"], name="ok"), helper.make_node("Det", ["r"], ["y"], name="planted_det")],
        [helper.make_tensor_value_info("x", F, [3, 3])],
        [helper.make_tensor_value_info("y", F, [])],
    )
    onnx.checker.check_model(det)
    result = check_graph(det, "planted")
    assert [f.rule for f in result.errors] == ["unsupported-op"] and "planted_det" in result.errors[0].message

    folder = tmp_path / "art"
    folder.mkdir()
    onnx.save(det, str(folder / "planted.onnx"))
    cli = runner.invoke(app, ["check", str(folder)])
    assert cli.exit_code == 1, cli.output
    assert "unsupported-op" in cli.stdout and "Det" in cli.stdout and "ready for TensorRT: NO" in cli.stdout


def test_custom_domain_op_is_unsupported() -> None:
    m = model(
        [helper.make_node("FancyAttention", ["x"], ["y"], name="fa", domain="com.example")],
        [helper.make_tensor_value_info("x", F, [2])],
        [helper.make_tensor_value_info("y", F, [2])],
        domains=("com.example",),
    )
    assert rules(m) == {"unsupported-op": "error"}


def test_shape_from_values_is_data_dependent_but_shape_of_is_fine() -> None:
    shape_of = model(
        [
            helper.make_node("Shape", ["x"], ["s"], name="shape"),
            helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape"),
        ],
        [helper.make_tensor_value_info("x", F, ["n", 4])],
        [helper.make_tensor_value_info("y", F, ["n", 4])],
    )
    assert rules(shape_of) == {}
    from_values = model(
        [
            helper.make_node("ArgMax", ["x"], ["a"], name="argmax", axis=1, keepdims=0),
            helper.make_node("OneHot", ["a", "depth", "vals"], ["oh"], name="onehot"),
            helper.make_node("Cast", ["x"], ["xi"], name="cast", to=I64),
            helper.make_node("ReduceMax", ["xi"], ["reps"], name="rmax", keepdims=1),
            helper.make_node("Concat", ["reps", "reps"], ["reps2"], name="concat", axis=0),
            helper.make_node("Tile", ["x", "reps2"], ["y"], name="tile"),
        ],
        [helper.make_tensor_value_info("x", F, [2, 4]), helper.make_tensor_value_info("depth", I64, [])],
        [helper.make_tensor_value_info("y", F, None), helper.make_tensor_value_info("oh", F, None)],
        [helper.make_tensor("vals", F, [2], [0.0, 1.0])],
    )
    found = check_graph(from_values, "g")
    messages = [f.message for f in found.findings if f.rule == "data-dependent-shape"]
    assert any("Tile (tile)" in m for m in messages)
    assert any(f.rule == "int64-shape-input" and "OneHot" in f.message for f in found.findings)


def test_control_flow_and_nonzero_are_errors() -> None:
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["o"])], "b", [], [helper.make_tensor_value_info("o", F, [2])]
    )
    m = model(
        [
            helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch, else_branch=branch),
            helper.make_node("NonZero", ["x"], ["nz"], name="nz"),
        ],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", F, [2])],
        [helper.make_tensor_value_info("y", F, [2]), helper.make_tensor_value_info("nz", I64, None)],
    )
    assert rules(m) == {"control-flow": "error", "data-dependent-shape": "error"}


def test_opset_outside_parser_range_warns() -> None:
    m = model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", F, [2])],
        [helper.make_tensor_value_info("y", F, [2])],
        opset=22,
    )
    assert rules(m) == {"opset": "warning"}


def test_check_on_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert [ln for ln in result.stderr.splitlines() if ln.strip()] == [
        f"escnet-export: error: {tmp_path / 'nope'}: no such artifacts folder"
    ]


@pytest.mark.parametrize("bad", ["not onnx at all"])
def test_check_on_unreadable_graph(tmp_path: Path, bad: str) -> None:
    (tmp_path / "broken.onnx").write_text(bad)
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 2 and "not a readable ONNX file" in result.stderr
