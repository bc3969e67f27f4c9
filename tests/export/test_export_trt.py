"""escnet-export trt: profiles, fp32 precision rules, missing TensorRT/GPU errors; engine builds need TensorRT."""

from __future__ import annotations

import importlib.util
import types
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
from escnet_export.cli import app
from escnet_export.errors import ExportError
from escnet_export.trt import env as trt_env
from escnet_export.trt.precision import fp32_nodes, layers_to_pin, pin_layers
from escnet_export.trt.profiles import AxisRange, default_texts, input_profiles
from escnet_runtime.contract import BATCH, CLASSES, DECODER, TEXT_ENCODER, TEXTS, ModelDims, graph_specs
from onnx import TensorProto, helper
from typer.testing import CliRunner

runner = CliRunner()
DIMS = ModelDims(
    image_size=128,
    grid=8,
    embed_dim=32,
    guidance_a=32,
    guidance_b=16,
    context_length=77,
    num_templates=3,
    num_blocks=2,
    state_dim=32,
    class_heads=2,
    prompt_points=5,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1:4:16", AxisRange(1, 4, 16)), ("8", AxisRange(8, 8, 8)), (" 2:2:3 ", AxisRange(2, 2, 3))],
)
def test_axis_range_parses(text: str, expected: AxisRange) -> None:
    assert AxisRange.parse(text, "batch") == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0:1:2", "MIN must be at least 1"),
        ("4:2:8", "MIN <= OPT <= MAX"),
        ("1:8:4", "MIN <= OPT <= MAX"),
        ("1:2", "expected MIN:OPT:MAX"),
        ("a:b:c", "whole numbers"),
        ("1:1:99999999", "MAX over"),
    ],
)
def test_axis_range_rejects(text: str, why: str) -> None:
    with pytest.raises(ExportError, match=why):
        AxisRange.parse(text, "classes")


def test_profiles_follow_the_contract() -> None:
    specs = graph_specs(DIMS)
    ranges = {BATCH: AxisRange(1, 2, 4), CLASSES: AxisRange(1, 150, 1024), TEXTS: AxisRange(1, 256, 256)}
    dec = {p.name: p for p in input_profiles(specs[DECODER], ranges)}
    assert dec["class_embeddings"].min == (1, 3, 32) and dec["class_embeddings"].max == (1024, 3, 32)
    assert dec["dense_features"].opt == (2, 32, 8, 8) and dec["guidance_b"].max == (4, 16, 32, 32)
    (tok,) = input_profiles(specs[TEXT_ENCODER], ranges)
    assert (tok.min, tok.opt, tok.max) == ((1, 77), (256, 77), (256, 77))
    with pytest.raises(ExportError, match="no range for dynamic axis 'classes'"):
        input_profiles(specs[DECODER], {BATCH: AxisRange(1, 1, 1)})


def test_default_texts_scale_with_templates_and_cap() -> None:
    assert default_texts(AxisRange(1, 10, 100), templates=3, text_batch=256) == AxisRange(1, 30, 256)
    assert default_texts(AxisRange(1, 150, 1024), templates=80, text_batch=256) == AxisRange(1, 256, 256)


def norm_graph() -> onnx.ModelProto:
    """x -> LayerNorm -> MatMul -> Softmax; x -> Pow -> ReduceMean -> Add -> Sqrt -> Div (RMS norm);
    x -> ReduceL2 -> Clip -> Expand -> Div (L2 normalisation); Conv elsewhere."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("LayerNormalization", ["x", "g", "b"], ["ln"], name="ln", axis=-1),
        helper.make_node("MatMul", ["ln", "w"], ["mm"], name="mm"),
        helper.make_node("Softmax", ["mm"], ["sm"], name="sm", axis=-1),
        helper.make_node("Pow", ["x", "two"], ["sq"], name="pow"),
        helper.make_node("ReduceMean", ["sq", "ax"], ["ms"], name="rmean"),
        helper.make_node("Add", ["ms", "eps"], ["mse"], name="add_eps"),
        helper.make_node("Sqrt", ["mse"], ["rms"], name="sqrt"),
        helper.make_node("Div", ["x", "rms"], ["rn"], name="div_rms"),
        helper.make_node("ReduceL2", ["x", "ax"], ["l2"], name="l2"),
        helper.make_node("Clip", ["l2", "eps"], ["l2c"], name="clip"),
        helper.make_node("Expand", ["l2c", "shp"], ["l2e"], name="expand"),
        helper.make_node("Div", ["x", "l2e"], ["xn"], name="div_l2"),
        helper.make_node("Add", ["sm", "rn"], ["s1"], name="add_out"),
        helper.make_node("Add", ["s1", "xn"], ["y"], name="add_final"),
    ]
    inits = [
        helper.make_tensor("g", f, [4], [1.0] * 4),
        helper.make_tensor("b", f, [4], [0.0] * 4),
        helper.make_tensor("w", f, [4, 4], [0.1] * 16),
        helper.make_tensor("two", f, [], [2.0]),
        helper.make_tensor("eps", f, [], [1e-6]),
        helper.make_tensor("ax", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("shp", TensorProto.INT64, [2], [2, 4]),
    ]
    graph = helper.make_graph(
        nodes,
        "norms",
        [helper.make_tensor_value_info("x", f, [2, 4])],
        [helper.make_tensor_value_info("y", f, [2, 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_precision_rules_pick_normalisations_not_matmuls() -> None:
    model = norm_graph()
    onnx.checker.check_model(model)
    pinned = {p.name: p for p in fp32_nodes(model)}
    assert {"ln", "sm", "pow", "rmean", "add_eps", "sqrt", "div_rms", "l2", "clip", "expand", "div_l2"} <= set(pinned)
    assert not {"mm", "add_final"} & set(pinned)
    assert "normalisation of l2" in pinned["div_l2"].reason


def decision_graph() -> onnx.ModelProto:
    """x -> MatMul -> Mul -> ArgMax (a prompt-like decision); x -> Relu -> MatMul -> y, whose
    Shape also feeds the decision's reshape (a value-free edge); the score also leaves as
    ``score_logsumexp``, which the next step graph turns into decisions."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["s"], name="corr"),
        helper.make_node("Mul", ["s", "t"], ["st"], name="temp"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w"], ["y"], name="mm_main"),
        helper.make_node("Shape", ["y"], ["ys"], name="shape"),
        helper.make_node("Reshape", ["st", "ys"], ["st2"], name="reshape"),
        helper.make_node("ArgMax", ["st2"], ["idx"], name="peak", axis=-1, keepdims=0),
        helper.make_node("ReduceLogSumExp", ["s", "ax"], ["score_logsumexp_part"], name="lse", keepdims=0),
        helper.make_node("Exp", ["y"], ["e"], name="exp_main"),
    ]
    inits = [
        helper.make_tensor("w", f, [4, 4], [0.1] * 16),
        helper.make_tensor("t", f, [], [2.0]),
        helper.make_tensor("ax", TensorProto.INT64, [1], [-1]),
    ]
    outputs = [
        helper.make_tensor_value_info("idx", TensorProto.INT64, [2]),
        helper.make_tensor_value_info("score_logsumexp_part", f, [2]),
        helper.make_tensor_value_info("e", f, [2, 4]),
    ]
    graph = helper.make_graph(nodes, "decisions", [helper.make_tensor_value_info("x", f, [2, 4])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_precision_rules_keep_what_feeds_a_decision_in_fp32() -> None:
    model = decision_graph()
    onnx.checker.check_model(model)
    pinned = {p.name: p for p in fp32_nodes(model)}
    assert {"corr", "temp", "reshape", "lse"} <= set(pinned)
    assert "peak" in pinned["temp"].reason and "pseudo prompts" in pinned["temp"].reason
    assert "score_logsumexp" in pinned["lse"].reason
    # mm_main only reaches the decision through Shape (no values): it stays fp16, as do its consumers.
    assert not {"relu", "mm_main", "shape", "exp_main"} & set(pinned)


def test_exported_prompt_path_is_pinned_and_the_blocks_are_not(tmp_path_factory: pytest.TempPathFactory) -> None:
    from support.artifacts import tiny_artifacts

    folder = tiny_artifacts(tmp_path_factory)[0]

    def pinned(graph: str) -> list:
        return [p for p in fp32_nodes(onnx.load(str(folder / f"{graph}.onnx"))) if "feeds" in p.reason]

    # Every block's prompts: block 0's scores come from the correlation (decoder_open), block 1's
    # from block 0's prompt map (decoder_attend_0): the score computation fp32.
    opened, attend = pinned("decoder_open"), pinned("decoder_attend_0")
    assert any(p.op_type == "MatMul" for p in opened)  # the correlation of the prompt scores
    assert any(p.op_type == "MatMul" for p in attend) and any(p.op_type == "ReduceLogSumExp" for p in attend)
    # Only the class-score map and its log-sum-exp, not the class attention before it (the bulk).
    assert len(attend) < len(onnx.load(str(folder / "decoder_attend_0.onnx")).graph.node) / 4
    # Inside a block only the prompt generation is pinned (softmax, threshold, the k-means
    # iterations on point coordinates: many small nodes), not SAM's or Swin's matmuls and convs.
    for block in ("decoder_block_0", "decoder_block_1"):
        nodes, graph = pinned(block), onnx.load(str(folder / f"{block}.onnx")).graph
        matmuls = sum(n.op_type == "MatMul" for n in graph.node)
        assert any(p.op_type == "Exp" for p in nodes) and any(p.op_type == "ArgMin" for p in nodes)
        assert sum(p.op_type == "MatMul" for p in nodes) < matmuls / 4
        assert not any(p.op_type == "Conv" for p in nodes)
    assert pinned("decoder_close") == []


@dataclass(frozen=True)
class FakeKind:
    name: str


class FakeLayerType:
    NORMALIZATION, SOFTMAX, REDUCE, ELEMENTWISE, MATRIX_MULTIPLY = (
        FakeKind(n) for n in ("NORMALIZATION", "SOFTMAX", "REDUCE", "ELEMENTWISE", "MATRIX_MULTIPLY")
    )


def fake_trt() -> types.SimpleNamespace:
    """The few TensorRT names trt_precision touches, for a test without TensorRT."""
    return types.SimpleNamespace(
        LayerType=FakeLayerType,
        float32="fp32",
        float16="fp16",
        int64="i64",
        IElementWiseLayer=type("IElementWiseLayer", (FakeLayer,), {}),  # the downcast TensorRT's API uses
        ElementWiseOperation=types.SimpleNamespace(POW="pow", SUM="sum"),
    )


class FakeTensor:
    def __init__(self, name: str, dtype: str = "fp32") -> None:
        self.name, self.dtype = name, dtype


class FakeLayer:
    def __init__(self, name: str, kind, outputs: list[FakeTensor], op: str | None = None) -> None:
        self.name, self.type, self._outputs, self.op = name, kind, outputs, op
        self.precision = None
        self.output_types: dict[int, str] = {}

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, k: int) -> FakeTensor:
        return self._outputs[k]

    def set_output_type(self, k: int, dtype: str) -> None:
        self.output_types[k] = dtype


class FakeNetwork:
    def __init__(self, layers: list[FakeLayer]) -> None:
        self.layers = layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self.layers[i]


def test_layers_to_pin_maps_onnx_nodes_and_layer_kinds() -> None:
    trt = fake_trt()
    t = FakeLayerType
    layers = [
        FakeLayer("ln", t.NORMALIZATION, [FakeTensor("ln")]),  # by name
        FakeLayer("renamed_by_parser", t.ELEMENTWISE, [FakeTensor("rn")], op="sum"),  # by output tensor (div_rms)
        FakeLayer("some_softmax", t.SOFTMAX, [FakeTensor("s")]),  # by kind
        FakeLayer("some_pow", t.ELEMENTWISE, [FakeTensor("p")], op="pow"),  # elementwise POW
        FakeLayer("mm", t.MATRIX_MULTIPLY, [FakeTensor("mm")]),  # not pinned
        FakeLayer("shape_reduce", t.REDUCE, [FakeTensor("n", dtype="i64")]),  # integer: skipped
    ]
    net = FakeNetwork(layers)
    chosen = layers_to_pin(trt, net, fp32_nodes(norm_graph()))
    picked = [layers[i].name for i, _ in chosen]
    assert picked == ["ln", "renamed_by_parser", "some_softmax", "some_pow"]
    record = pin_layers(trt, net, chosen)
    assert [r["layer"] for r in record] == picked
    assert all(layers[i].precision == "fp32" and layers[i].output_types == {0: "fp32"} for i, _ in chosen)
    assert layers[4].precision is None


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_trt_without_tensorrt_exits_2_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "engines"
    result = runner.invoke(app, ["trt", "--onnx-dir", str(tmp_path / "missing"), "--out", str(out)])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "TensorRT is not installed" in lines[0]
    assert not out.exists()


def test_trt_without_gpu_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trt_env, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.x"))
    monkeypatch.setattr(trt_env, "detect_gpu", lambda: None)
    result = runner.invoke(app, ["trt", "--onnx-dir", str(tmp_path)])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no NVIDIA GPU visible" in lines[0]


def test_trt_bad_profile_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trt_env, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.x"))
    monkeypatch.setattr(trt_env, "detect_gpu", lambda: trt_env.GpuInfo("fake", "9.0"))
    result = runner.invoke(app, ["trt", "--onnx-dir", str(tmp_path), "--batch", "4:1:2"])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--batch" in lines[0]


def test_trt_engine_build(tmp_path: Path) -> None:
    """Real engines: needs TensorRT and a GPU (skipped honestly elsewhere)."""
    pytest.importorskip("tensorrt")
    if trt_env.detect_gpu() is None:
        pytest.skip("no NVIDIA GPU")
    import json

    from escnet_export.onnx.pipeline import ExportOptions, run_export

    art = tmp_path / "art"
    assert run_export(ExportOptions(preset="tiny", out=art)).published
    cache = tmp_path / "timing.cache"
    result = runner.invoke(
        app,
        [
            "trt",
            "--onnx-dir",
            str(art),
            "--fp16",
            "--batch",
            "1:1:2",
            "--classes",
            "1:8:32",
            "--timing-cache",
            str(cache),
        ],
    )
    assert result.exit_code == 0, result.output
    build = json.loads((art / "trt" / "build.json").read_text())
    assert build["fp16"] and set(build["engines"]) == {"image_encoder", "text_encoder", "decoder"}
    assert build["engines"]["decoder"]["precision_overrides"] and cache.is_file()
