"""Evaluation: confusion-matrix metrics against hand counts, the predictor loop, escnet-eval."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from escnet.data import Sample, SyntheticConfig, generate
from escnet.evaluation import ConfusionMatrix, TorchPredictor, evaluate


def test_known_prediction_known_miou() -> None:
    label = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 2], [2, 0, 0, 1]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, label)
    m = cm.metrics()
    # class 0: tp 3, label 4, pred 4 (incl. the pixel labelled 2) -> union 5
    # class 1: tp 3, label 4, pred 4 -> union 5;  class 2: tp 1, label 2, pred 2 -> union 3
    assert m.iou == pytest.approx([3 / 5, 3 / 5, 1 / 3])
    assert m.miou == pytest.approx((3 / 5 + 3 / 5 + 1 / 3) / 3)
    assert m.pixel_accuracy == pytest.approx(7 / 10)
    assert m.mean_accuracy == pytest.approx((3 / 4 + 3 / 4 + 1 / 2) / 3)
    assert m.pixels == 10  # the two 255 pixels are not counted


def test_absent_class_is_nan_and_left_out_of_the_mean() -> None:
    cm = ConfusionMatrix(4)
    cm.update(np.array([[0, 1]]), np.array([[0, 1]]))
    m = cm.metrics()
    assert m.miou == 1.0 and math.isnan(m.iou[2]) and math.isnan(m.iou[3])
    d = m.to_dict(["a", "b", "c", "d"])
    assert d["iou"]["c"] is None and d["iou"]["a"] == 1.0


def test_confusion_matrix_rejects_bad_input() -> None:
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="prediction values"):
        cm.update(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="label values"):
        cm.update(np.zeros((2, 2)), np.full((2, 2), 7))


def test_loop_with_a_predictor_callable_and_merge() -> None:
    rng = np.random.default_rng(0)
    samples = [
        Sample(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8), rng.integers(0, 3, (6, 5)), f"s{i}") for i in range(3)
    ]
    truth = {id(s.image): s.label for s in samples}
    perfect = evaluate(samples, lambda im: truth[id(im)], num_classes=3)
    assert perfect.metrics.miou == 1.0 and perfect.images == 3
    # a predictor that answers in a larger prompt vocabulary: indices >= 2 all mean class 2
    shifted = evaluate(samples, lambda im: np.where(truth[id(im)] == 2, 5, truth[id(im)]), 3, merge_from=2)
    assert shifted.metrics.miou == 1.0
    wrong = evaluate(samples, lambda im: (truth[id(im)] + 1) % 3, 3, limit=2)
    assert wrong.metrics.miou == 0.0 and wrong.images == 2
    with pytest.raises(ValueError, match="s0: predictor returned shape"):
        evaluate(samples, lambda im: np.zeros((2, 2), dtype=int), 3)


@pytest.mark.parametrize("sliding", [False, True])
def test_torch_predictor(tiny_model, sliding: bool) -> None:
    image = np.random.default_rng(1).integers(0, 255, (40, 52, 3), dtype=np.uint8)
    predictor = TorchPredictor(tiny_model, ["cat", "grass", "sky"], sliding_window=sliding)
    out = predictor(image)
    assert out.shape == (40, 52) and out.min() >= 0 and out.max() < 3
    with pytest.raises(ValueError, match="uint8"):
        predictor(image.astype(np.float32))


def _eval_cli(*args: str):
    """escnet-eval in-process (typer's runner): exit code, stdout, stderr."""
    from escnet_bench.commands.evaluate import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, ["--no-progress", *args])


def test_eval_cli_on_a_checkpoint(tmp_path: Path, tiny_model) -> None:
    import json

    from escnet import save_checkpoint

    data = generate(tmp_path / "syn", SyntheticConfig(num_train=0, num_val=2, size=64))
    ckpt = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    r = _eval_cli(
        "--dataset", "synthetic", "--root", str(data), "--checkpoint", str(ckpt), "--output", str(tmp_path / "r.json")
    )
    assert r.exit_code == 0, r.output
    assert "synthetic: 2 images, 8 classes" in r.stdout and "mIoU" in r.stdout
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["images"] == 2 and 0.0 <= record["miou"] <= 1.0 and len(record["iou"]) == 8


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "ade150", "--root", "/nonexistent", "--checkpoint", "x"], "data root not found"),
        (["--dataset", "nope", "--root", ".", "--checkpoint", "x"], "unknown data set"),
        (["--dataset", "synthetic", "--root", "{syn}"], "exactly one of"),
        (["--dataset", "synthetic", "--root", "{syn}", "--checkpoint", "{syn}/none.safetensors"], "no such checkpoint"),
        (["--dataset", "synthetic", "--root", "{syn}", "--artifacts", "{syn}/none"], "artifacts folder not found"),
    ],
)
def test_eval_cli_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    syn = generate(tmp_path / "syn", SyntheticConfig(num_train=0, num_val=1, size=32))
    r = _eval_cli(*[a.format(syn=syn) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.slow
def test_eval_cli_artifacts_match_the_checkpoint(tmp_path: Path, tiny_model, monkeypatch) -> None:
    """The exported model, run by escnet_runtime, scores as the PyTorch model on the same images."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the runtime's text-embedding cache
    import json

    from typer.testing import CliRunner

    from escnet import save_checkpoint

    pytest.importorskip("onnxruntime")
    from escnet_export.cli import app as export_app

    data = generate(tmp_path / "syn", SyntheticConfig(num_train=0, num_val=3, size=64))
    ckpt = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    art = tmp_path / "art"
    r = CliRunner().invoke(export_app, ["onnx", "--preset", "tiny", "--checkpoint", str(ckpt), "--out", str(art)])
    assert r.exit_code == 0, r.output
    results = {}
    for flag, source in (("--checkpoint", ckpt), ("--artifacts", art)):
        out = tmp_path / f"{flag[2:]}.json"
        r = _eval_cli("--dataset", "synthetic", "--root", str(data), flag, str(source), "--output", str(out))
        assert r.exit_code == 0, r.output
        results[flag] = json.loads(out.read_text())
    assert results["--artifacts"]["images"] == results["--checkpoint"]["images"] == 3
    assert results["--artifacts"]["miou"] == pytest.approx(results["--checkpoint"]["miou"], abs=0.02)
    assert results["--artifacts"]["pixel_accuracy"] == pytest.approx(
        results["--checkpoint"]["pixel_accuracy"], abs=0.02
    )


def test_eval_console_script_bad_input_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "escnet_bench.commands.evaluate",
        "--dataset",
        "ade150",
        "--root",
        str(tmp_path / "none"),
    ]
    r = subprocess.run([*cmd, "--checkpoint", "x.safetensors"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'none'}: data root not found (expected a folder)"]
