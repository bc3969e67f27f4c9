"""escnet-bench with escnet_runtime: export on demand, ort-cpu against PyTorch, GPU backends skipped."""

from __future__ import annotations

import json

import pytest
from escnet_bench.artifacts import SOURCE_CHECKPOINT
from escnet_bench.cli import app
from escnet_bench.schema import validate_result
from typer.testing import CliRunner

runner = CliRunner()
BACKENDS = "torch,ort-cpu,ort-cuda,ort-trt,trt"


@pytest.fixture(scope="module")
def runtime_run(tmp_path_factory):
    """One tiny run that exports its own artifacts, then benchmarks torch and ort-cpu side by side."""
    root = tmp_path_factory.mktemp("bench-runtime")
    args = ["--preset", "tiny", "--backends", BACKENDS, "--classes", "2,5", "--batch", "1", "--iters", "2"]
    args += ["--warmup", "0", "--artifacts", str(root / "artifacts"), "--out", str(root / "out")]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root, json.loads((root / "out" / "results.json").read_text())


def test_exports_missing_artifacts_from_the_reference_weights(runtime_run):
    root, data = runtime_run
    validate_result(data)
    manifest = json.loads((root / "artifacts" / "manifest.json").read_text())
    assert manifest["preset"] == "tiny"
    assert (root / "artifacts" / SOURCE_CHECKPOINT).is_file()
    from escnet_runtime.fileio import sha256_file

    assert manifest["source_weights"]["checkpoint"] == sha256_file(root / "artifacts" / SOURCE_CHECKPOINT)


def test_ort_cpu_runs_and_gpu_backends_are_skipped(runtime_run):
    _, data = runtime_run
    by = {b["name"]: b for b in data["backends"]}
    assert by["torch"]["status"] == "ok" and by["ort-cpu"]["status"] == "ok", by
    assert by["ort-cpu"]["details"]["provider"] == "CPUExecutionProvider"
    for name in ("ort-cuda", "ort-trt", "trt"):
        assert by[name]["status"] == "skipped" and by[name]["reason"], by[name]


def test_ort_cpu_parity_with_pytorch(runtime_run):
    _, data = runtime_run
    rows = [p for p in data["parity"] if p["backend"] == "ort-cpu"]
    assert {(p["classes"], p["graph"]) for p in rows} == {
        (t, g) for t in (2, 5) for g in ("image_encoder", "text_encoder", "decoder")
    }
    for p in rows:
        assert p["passed"], p
        assert p["max_abs"] <= 1e-4 and p["cosine"] >= 0.9999
    tasks = [t for t in data["task_parity"] if t["backend"] == "ort-cpu"]
    assert len(tasks) == 2
    for t in tasks:
        assert t["agreement"] >= 0.999 and t["miou"] >= 0.99, t


def test_text_cache_stages(runtime_run):
    _, data = runtime_run
    stages = {(t["stage"], t["classes"]): t for t in data["timings"] if t["backend"] == "ort-cpu"}
    for classes in (2, 5):
        cold, warm = stages[("text_cold", classes)], stages[("text_warm", classes)]
        assert ("text_warm_disk", classes) in stages
        assert cold["gflops"] > 0 and warm["gflops"] is None  # a warm cache runs no text encoder
        assert warm["timing"]["median_ms"] < cold["timing"]["median_ms"]
    e2e = [t for t in data["timings"] if t["stage"] == "end_to_end"]
    assert {t["backend"] for t in e2e} == {"torch", "ort-cpu"}


def test_artifacts_of_other_weights_are_refused(runtime_run, tmp_path):
    root, _ = runtime_run
    import torch

    from escnet import build_model, save_checkpoint

    torch.manual_seed(123)
    other = save_checkpoint(build_model("tiny"), tmp_path / "other.safetensors")
    args = ["--preset", "tiny", "--backends", "torch,ort-cpu", "--classes", "2", "--checkpoint", str(other)]
    result = runner.invoke(app, [*args, "--artifacts", str(root / "artifacts"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot match" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_runtime_process_footprint_has_no_torch(runtime_run):
    _, data = runtime_run
    by = {b["name"]: b for b in data["backends"]}
    fresh = by["ort-cpu"]["details"]["fresh_process"]
    assert fresh["error"] is None and fresh["torch_imported"] is False
    peak = {(m["backend"], m["classes"]): m["process_peak_rss_mib"] for m in data["memory"]}
    for classes in (2, 5):
        assert 0 < peak[("ort-cpu", classes)] < peak[("torch", classes)]  # no torch in the runtime's process


def test_class_chunk_runs_every_backend_in_chunks(runtime_run, tmp_path):
    """--class-chunk 2 with 5 classes: torch and ort-cpu decode in three chunks, with the reference's results."""
    root, _ = runtime_run
    args = ["--preset", "tiny", "--backends", "torch,ort-cpu", "--classes", "5", "--iters", "1", "--warmup", "0"]
    args += ["--class-chunk", "2", "--artifacts", str(root / "artifacts"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    validate_result(data)
    assert data["options"]["class_chunk"] == 2
    by = {b["name"]: b for b in data["backends"]}
    for name in ("torch", "ort-cpu"):
        assert by[name]["status"] == "ok", by[name]
        assert by[name]["details"]["class_chunk"] == 2
        assert by[name]["details"]["fresh_process"]["error"] is None  # the fresh process chunks too
    assert "| torch | ok | cpu | fp32 | 2 |" in result.stdout
    rows = [p for p in data["parity"] if p["classes"] == 5]
    assert {(p["backend"], p["graph"]) for p in rows} >= {("torch", "decoder"), ("ort-cpu", "decoder")}
    for p in rows:  # chunks change the logits by rounding only
        assert p["passed"] and p["max_abs"] <= 1e-4 and p["cosine"] >= 0.9999, p
    for t in data["task_parity"]:
        assert t["agreement"] >= 0.999 and t["miou"] >= 0.99, t


def test_plain_random_init_export_is_matched_by_its_seed(tmp_path):
    """`escnet-export onnx` without weights records its seed; the benchmark rebuilds that model."""
    from escnet_export.cli import app as export_app

    artifacts = tmp_path / "artifacts"
    exported = runner.invoke(export_app, ["onnx", "--preset", "tiny", "--seed", "7", "--out", str(artifacts)])
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((artifacts / "manifest.json").read_text())
    assert manifest["source_weights"] == {"clip": "random-init", "sam": "random-init", "seed": "7"}
    args = ["--preset", "tiny", "--backends", "torch,ort-cpu", "--classes", "3", "--iters", "1", "--warmup", "0"]
    args += ["--artifacts", str(artifacts)]
    result = runner.invoke(app, [*args, "--seed", "7", "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert all(p["passed"] for p in data["parity"] if p["backend"] == "ort-cpu")
    assert all(t["agreement"] >= 0.999 for t in data["task_parity"] if t["backend"] == "ort-cpu")
    other_seed = runner.invoke(app, [*args, "--seed", "8", "--out", str(tmp_path / "out8")])
    assert other_seed.exit_code == 2 and "cannot match" in other_seed.stderr
