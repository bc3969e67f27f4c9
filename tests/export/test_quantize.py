"""``escnet-export quantize`` on the tiny preset: an int8 folder every runtime backend opens, the
gates' verdicts (not judged on random weights, a forced failure writes nothing), one-line errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from support.artifacts import tiny_artifacts, tiny_int8

pytest.importorskip("nncf")

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def _quantize_here(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The command in this process (no start-up cost): exit code, stdout, stderr."""
    from escnet_export.cli import main

    monkeypatch.setattr(sys, "argv", ["escnet-export", "quantize", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def fp32(tmp_path_factory) -> Path:
    return tiny_artifacts(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def int8(fp32, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out, stdout, stderr = tiny_int8(tmp_path_factory)
    return out, subprocess.CompletedProcess([], 0, stdout, stderr)


def test_int8_folder_is_on_the_contract(fp32, int8):
    from escnet_runtime.manifest import load_manifest

    out, _ = int8
    manifest = load_manifest(out, verify=True)  # every file listed and hashed
    old = load_manifest(fp32)
    assert set(manifest.files) == set(old.files) and manifest.graphs == old.graphs
    assert (manifest.precision, old.precision) == ("int8", "fp32") and manifest.format_minor == 2
    extra = manifest.extra
    assert extra["calibration"]["size"] == 4 and len(extra["calibration"]["sha256"]) == 64
    assert extra["quantization"]["engine"] == "openvino"
    for graph, precision in extra["quantization"]["graphs"].items():
        model = onnx.load(out / manifest.graphs[graph].file)
        has_qdq = any(n.op_type == "QuantizeLinear" for n in model.graph.node)
        assert has_qdq == (precision == "int8"), graph
    assert extra["quantization"]["graphs"]["image_encoder"] == "int8"
    assert all(extra["quantization"]["graphs"][s] == "int8" for s in manifest.decoder_steps)


def test_random_weights_are_not_judged(fp32, int8):
    from escnet_runtime.manifest import load_manifest

    out, proc = int8
    assert "gates: not judged" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "gates: not judged" in warnings[0]
    manifest = load_manifest(out)
    assert manifest.extra["gates"] == "not judged"
    # not judged is not "the gates hold": the text encoder stays fp32, byte for byte
    text = manifest.graphs["text_encoder"].file
    assert manifest.files[text] == load_manifest(fp32).files[text]


def test_an_int8_folder_is_not_quantised_again(int8, tmp_path, monkeypatch, capsys):
    out, _ = int8
    again = tmp_path / "again"
    code, _, stderr = _quantize_here(
        monkeypatch, capsys, "--artifacts", str(out), "--synthetic", "2", "--out", str(again)
    )
    assert code == 2 and "holds int8 graphs (manifest precision)" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and not again.exists()


@pytest.mark.parametrize("backend", ["ort-cpu", *(["ov-cpu"] if HAS_OPENVINO else [])])
def test_runtime_backends_open_and_segment_the_int8_folder(fp32, int8, backend):
    from escnet_runtime import Segmenter

    out, _ = int8
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    names = ["sky", "grass", "a red car", "wall", "person"]  # more classes than two chunks of the steps
    with Segmenter(out, backend=backend, disk_cache=False, class_chunk=2) as seg:
        seg.set_vocabulary(names)
        result = seg.segment(image, return_scores=True)
    assert result.labels.shape == (96, 128) and result.scores.shape == (5, 96, 128)
    assert np.isfinite(result.scores).all() and result.labels.max() < 5


def test_escnet_eval_scores_the_int8_folder(int8, tmp_path):
    from escnet_bench.commands.evaluate import app
    from typer.testing import CliRunner

    from escnet.data import SyntheticConfig, generate

    out, _ = int8
    data = generate(tmp_path / "syn", SyntheticConfig(num_train=0, num_val=2, size=64))
    metrics = tmp_path / "m.json"
    args = ["--dataset", "synthetic", "--root", str(data), "--artifacts", str(out), "--output", str(metrics)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    record = json.loads(metrics.read_text())
    assert record["images"] == 2 and 0 <= record["miou"] <= 1
    assert record["source"] == f"{out} (int8 graphs, ort-cpu)" and "(int8 graphs, ort-cpu)" in r.output


def _confident_copy(fp32: Path, where: Path) -> Path:
    """The tiny fp32 folder with its logits scaled by 50: scores saturate, most pixels are confident."""
    from escnet_runtime.fileio import sha256_file
    from escnet_runtime.manifest import load_manifest, write_manifest

    folder = where / "confident"
    shutil.copytree(fp32, folder)
    manifest = load_manifest(folder)
    for graph in ("decoder", "decoder_close"):
        path = folder / manifest.graphs[graph].file
        model = onnx.load(path)
        out = model.graph.output[0]
        scale = onnx.helper.make_tensor("logit_scale", onnx.TensorProto.FLOAT, [], [50.0])
        model.graph.initializer.append(scale)
        for node in model.graph.node:
            node.output[:] = [f"{o}_unscaled" if o == out.name else o for o in node.output]
        model.graph.node.append(onnx.helper.make_node("Mul", [f"{out.name}_unscaled", "logit_scale"], [out.name]))
        onnx.save(model, path)
    files = {name: sha256_file(folder / name) for name in manifest.files}
    import dataclasses

    write_manifest(folder, dataclasses.replace(manifest, files=files))
    return folder


def test_a_failed_gate_writes_nothing(fp32, tmp_path, monkeypatch, capsys):
    confident = _confident_copy(fp32, tmp_path)
    out = tmp_path / "int8"
    args = ["--artifacts", str(confident), "--synthetic", "4", "--held-out", "2", "--out", str(out)]
    code, stdout, stderr = _quantize_here(
        monkeypatch, capsys, *args, "--engine", "onnxruntime", "--min-agreement", "1", "--miou-tolerance", "0"
    )
    assert code == 1, stderr[-3000:]
    assert "| ort-cpu | int8 |" in stdout and "fail" in stdout  # the gate table
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "nothing written" in errors[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".int8")]  # no staging left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --calibration DIR and --synthetic N"),
        (["--synthetic", "2", "--calibration", "."], "exactly one of"),
        (["--synthetic", "0"], "--synthetic 0: expected 1 to"),
        (["--synthetic", "2", "--engine", "tensorrt"], "--engine 'tensorrt'"),
        (["--synthetic", "2", "--held-out", "0"], "--held-out 0"),
        (["--synthetic", "2", "--min-agreement", "1.5"], "min agreement 1.5"),
        (["--synthetic", "lots"], "Invalid value for '--synthetic'"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    fake = tmp_path / "art"
    fake.mkdir()
    (fake / "manifest.json").write_text("{}")
    code, _, stderr = _quantize_here(
        monkeypatch, capsys, "--artifacts", str(fake), "--out", str(tmp_path / "out"), *args
    )
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and message in lines[0], stderr
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()


def test_folders_are_checked_before_work(tmp_path, monkeypatch, capsys):
    art = tmp_path / "art"
    art.mkdir()
    (art / "manifest.json").write_text(json.dumps({}))
    cases = [
        (["--artifacts", str(tmp_path / "none"), "--out", str(tmp_path / "o")], "no manifest.json"),
        (["--artifacts", str(art), "--out", str(art)], "is the artifacts folder"),
        (["--artifacts", str(art), "--out", str(art / "inner")], "lies inside the artifacts folder"),
        (["--artifacts", str(art), "--out", str(tmp_path)], "holds the artifacts folder"),
    ]
    calibration = tmp_path / "calib"
    calibration.mkdir()
    cases.append(
        (
            ["--artifacts", str(art), "--out", str(calibration / "o"), "--calibration", str(calibration)],
            "lies inside the calibration folder",
        )
    )
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    cases.append((["--artifacts", str(art), "--out", str(full)], "pass --overwrite"))
    for args, message in cases:
        source = [] if "--calibration" in args else ["--synthetic", "2"]
        code, _, stderr = _quantize_here(monkeypatch, capsys, *args, *source)
        assert code == 2 and message in stderr, (args, stderr)
        assert len(stderr.strip().splitlines()) == 1
    assert (full / "notes.txt").read_text() == "mine"
