"""escnet-export onnx on the tiny preset: parity with PyTorch, dynamic axes, manifest, errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

ort = pytest.importorskip("onnxruntime")

from escnet_export.checks.parity import argmax_agreement  # noqa: E402
from escnet_export.cli import app  # noqa: E402
from escnet_export.onnx.pipeline import ExportOptions  # noqa: E402
from escnet_export.onnx.wrappers import sample_inputs  # noqa: E402
from escnet_runtime.contract import DECODER, IMAGE_ENCODER, TEXT_ENCODER  # noqa: E402
from escnet_runtime.manifest import ManifestError, load_manifest  # noqa: E402

LOGITS_ATOL = 1e-4
ARGMAX_MIN = 0.999
TRACE_CLASSES = 3
runner = CliRunner()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "tiny"
    from escnet import save_checkpoint

    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(tiny_model, ckpt)
    assert ExportOptions().trace_classes == TRACE_CLASSES  # the graphs are traced with T = 3
    result = runner.invoke(app, ["onnx", "--preset", "tiny", "--checkpoint", str(ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for graph in ("image_encoder", "text_encoder", "decoder", "end_to_end"):
        assert graph in result.stdout  # the parity table
    return out


@pytest.fixture(scope="module")
def sessions(export_dir: Path) -> dict[str, ort.InferenceSession]:
    manifest = load_manifest(export_dir)
    return {
        name: ort.InferenceSession(str(export_dir / g.file), providers=["CPUExecutionProvider"])
        for name, g in manifest.graphs.items()
    }


def run(sess: ort.InferenceSession, *args: torch.Tensor) -> list[np.ndarray]:
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: a.detach().numpy() for n, a in zip(names, args, strict=True)})


def test_files_and_contract(export_dir: Path) -> None:
    manifest = load_manifest(export_dir)
    assert set(manifest.files) >= {g.file for g in manifest.graphs.values()} | {manifest.tokenizer.vocab_file}
    assert manifest.source_weights["checkpoint"] != "random-init"
    for name, spec in manifest.graphs.items():
        model = onnx.load(str(export_dir / spec.file))
        onnx.checker.check_model(model)
        for value, t in zip(
            list(model.graph.input) + list(model.graph.output), spec.inputs + spec.outputs, strict=True
        ):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            assert value.name == t.name and dims == list(t.shape), name
    assert not list(export_dir.glob(".escnet-export-*")), "staging folder left behind"


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("classes", [1, 7, 300])
def test_decoder_dynamic_classes_parity(tiny_model, sessions, batch: int, classes: int) -> None:
    args = sample_inputs(tiny_model, batch, classes, seed=classes)[DECODER]
    with torch.no_grad():
        ref = tiny_model.decode(*args, class_chunk=None).numpy()
        chunked = tiny_model.decode(*args).numpy()  # the model's default chunking gives the same logits
    out = run(sessions[DECODER], *args)[0]
    assert out.shape == (batch, classes, 32, 32)
    assert np.abs(out - ref).max() <= LOGITS_ATOL
    assert argmax_agreement(ref, out) >= ARGMAX_MIN
    assert np.abs(chunked - ref).max() <= LOGITS_ATOL


@pytest.mark.parametrize("batch", [1, 3])
def test_encoders_parity(tiny_model, sessions, batch: int) -> None:
    args = sample_inputs(tiny_model, batch, 7, seed=batch)
    with torch.no_grad():
        ref_img = tiny_model.encode_image(*args[IMAGE_ENCODER])
        ref_txt = tiny_model.encode_text(*args[TEXT_ENCODER]).numpy()
    for r, o in zip(ref_img, run(sessions[IMAGE_ENCODER], *args[IMAGE_ENCODER]), strict=True):
        assert o.shape == tuple(r.shape)
        assert np.abs(o - r.numpy()).max() <= 1e-4 * max(1.0, float(r.abs().max()))
    txt = run(sessions[TEXT_ENCODER], *args[TEXT_ENCODER])[0]
    assert txt.shape == ref_txt.shape == (7, 32)
    assert np.abs(txt - ref_txt).max() <= 1e-4


@pytest.mark.parametrize("batch", [1, 3])
def test_end_to_end_parity(tiny_model, sessions, batch: int) -> None:
    names = ["cat", "grass", "sky", "road", "person", "tree", "water"]
    g = torch.Generator().manual_seed(batch)
    images = torch.randn(batch, 3, 128, 128, generator=g)
    tokens = tiny_model.tokenize(names)
    with torch.no_grad():
        ref = tiny_model(images, names).numpy()  # the model's own forward, class chunks and all
    feats = run(sessions[IMAGE_ENCODER], images)
    text = run(sessions[TEXT_ENCODER], tokens)[0].reshape(len(names), 1, -1)
    out = run(sessions[DECODER], *(torch.from_numpy(a) for a in (*feats, text)))[0]
    assert np.abs(out - ref).max() <= LOGITS_ATOL
    assert argmax_agreement(ref, out) >= ARGMAX_MIN


def test_manifest_detects_a_changed_byte(export_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    manifest = load_manifest(copy)
    target = copy / manifest.graphs[DECODER].file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="does not match"):
        load_manifest(copy)
    load_manifest(copy, verify=False)  # the manifest itself is still readable


def test_external_data_for_large_graphs(tiny_model, tmp_path: Path) -> None:
    """Graphs over the threshold (2 GB in real use) keep weights in an external-data file."""
    from escnet_export.onnx.graph_export import export_graph
    from escnet_export.onnx.wrappers import graph_modules, model_dims
    from escnet_runtime.contract import graph_specs

    spec = graph_specs(model_dims(tiny_model))[TEXT_ENCODER]
    args = sample_inputs(tiny_model, 1, 2)[TEXT_ENCODER]
    graph = export_graph(graph_modules(tiny_model)[TEXT_ENCODER], spec, args, tmp_path, 18, external_threshold=0)
    assert graph.external_data and graph.files == (spec.file, f"{spec.file}.data")
    vocab_table = tiny_model.clip.token_embedding.weight.numel() * 4  # the largest weight of the text tower
    assert (tmp_path / graph.files[1]).stat().st_size >= vocab_table > 10 * graph.path.stat().st_size
    sess = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = tiny_model.encode_text(args[0]).numpy()
    assert np.abs(run(sess, *args)[0] - ref).max() <= 1e-4


PROGRESS_LINE = re.compile(r"^escnet-export \w+ \[ *[0-9.]+ s\]")  # runtime.progress.plain_line, off a terminal


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit 2 and one error line; the plain progress lines printed before it (stderr is not a TTY here) aside."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not PROGRESS_LINE.match(ln)]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0]


def test_unknown_preset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["onnx", "--preset", "vit-x", "--out", str(out)])
    assert_one_line_error(result, "unknown preset 'vit-x'")
    assert not out.exists()


def test_bad_class_chunk(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["onnx", "--preset", "tiny", "--class-chunk", "0", "--out", str(out)])
    assert_one_line_error(result, "--class-chunk 0: expected at least 1")
    assert not out.exists()


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "bad.safetensors"
    ckpt.write_bytes(b"\x00\x01 not a checkpoint")
    out = tmp_path / "out"
    result = runner.invoke(app, ["onnx", "--preset", "tiny", "--checkpoint", str(ckpt), "--out", str(out)])
    assert_one_line_error(result, "bad.safetensors")
    assert not out.exists() or not any(out.rglob("*"))


def test_unwritable_output_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["onnx", "--preset", "tiny", "--out", str(blocker / "out")])
    assert_one_line_error(result, "cannot write to output folder")
    assert blocker.read_text() == "not a folder" and list(tmp_path.iterdir()) == [blocker]


def test_existing_folder_keeps_no_partial_file_on_failure(tmp_path: Path, monkeypatch) -> None:
    """A failure after some graphs were written leaves nothing new in the folder."""
    import escnet_export.onnx.pipeline as pipeline

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    real_export, written = pipeline.export_graph, []

    def fail_on_decoder(module, spec, args, folder, *rest):
        if spec.name == DECODER:
            written.extend(p.name for p in folder.iterdir())
            raise pipeline.ExportError("injected failure while exporting the decoder")
        return real_export(module, spec, args, folder, *rest)

    monkeypatch.setattr(pipeline, "export_graph", fail_on_decoder)
    result = runner.invoke(app, ["onnx", "--preset", "tiny", "--out", str(out), "--no-simplify"])
    assert_one_line_error(result, "injected failure")
    assert sorted(written) == ["image_encoder.onnx", "text_encoder.onnx"]  # graphs had been staged ...
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # ... and none is left


def test_check_says_the_export_is_ready_and_reports_fp16(export_dir: Path) -> None:
    from escnet_export.checks.preflight import run_check

    report = run_check(export_dir)
    assert report.ready, [f.message for g in report.graphs for f in g.errors]
    steps = list(load_manifest(export_dir).decoder_steps)
    assert [g.name for g in report.graphs] == [IMAGE_ENCODER, TEXT_ENCODER, DECODER, *steps]  # every graph
    by_graph = {r.graph: r for r in report.fp16}
    assert set(by_graph) == {IMAGE_ENCODER, TEXT_ENCODER, DECODER}
    assert by_graph[DECODER].pinned_by_rule.get("LayerNormalization", 0) > 0
    for r in report.fp16:
        for d in r.with_fp32_layers:
            assert d.finite and d.cosine > 0.99, (r.graph, d)
    (logits,) = by_graph[DECODER].with_fp32_layers
    assert logits.argmax is not None and 0.0 <= logits.argmax <= 1.0


def test_trt_options_profiles_from_an_export(export_dir: Path) -> None:
    from escnet_export.trt.build import TrtOptions

    opts = TrtOptions.parse(export_dir, None, True, "1:2:4", "1:20:300", None, 2.0)
    profiles = opts.profiles()
    assert opts.out == export_dir / "trt"
    (tokens,) = profiles[TEXT_ENCODER]
    assert tokens.opt == (20, 77) and tokens.max == (256, 77)  # 20 classes x 1 template; capped at 256 texts
    dec = {p.name: p for p in profiles[DECODER]}
    assert dec["class_embeddings"].max == (300, 1, 32) and dec["dense_features"].min == (1, 32, 8, 8)
    # Every decoder step gets a profile too; by default classes per call go up to the class chunk.
    manifest = load_manifest(export_dir)
    assert set(profiles) == set(manifest.graphs) and set(manifest.decoder_steps) < set(profiles)
    default = TrtOptions.parse(export_dir, None, False, "1:1:1", None, None, 2.0)
    chunk = manifest.class_chunk
    assert (default.classes.min, default.classes.opt, default.classes.max) == (1, chunk, chunk)
    block = {p.name: p for p in default.profiles()["decoder_attend_0"]}
    assert block["class_state"].max == (1, chunk, 32, 8, 8) and block["attention_kv"].opt == (1, 64, 2, 16, 16)


def test_decoder_graphs_use_native_gelu_and_no_run_time_masks(export_dir: Path) -> None:
    # Opset 20's Gelu (ONNX Runtime fuses it with its bias add; opset 18 writes an Erf chain), and
    # the Swin shift mask and window layout as constants (no ScatterND building the mask per run).
    from escnet_export.onnx.opset import DEFAULT_OPSET

    manifest = load_manifest(export_dir)
    assert manifest.opset == DEFAULT_OPSET == 20
    for name in (DECODER, *manifest.decoder_steps):
        model = onnx.load(str(export_dir / manifest.graphs[name].file))
        ops = {n.op_type for n in model.graph.node}
        assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {DEFAULT_OPSET}, name
        assert not ops & {"ScatterND", "ScatterElements", "Erf"}, (name, ops & {"ScatterND", "ScatterElements", "Erf"})
        assert all(n.domain in ("", "ai.onnx") for n in model.graph.node), name  # no contrib ops
        if name.startswith("decoder_block_") or name == DECODER:  # the steps that run Swin blocks
            assert "Gelu" in ops and "Gather" in ops, name
