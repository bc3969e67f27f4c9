"""escnet-bench end to end on the tiny preset: outputs, schema, parity fields, skipped backends, bad arguments."""

from __future__ import annotations

import json

import pytest
from escnet_bench.cli import app
from escnet_bench.schema import validate_result
from typer.testing import CliRunner

runner = CliRunner()


def _run(args: list[str]):
    return runner.invoke(app, args, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "torch,tensorflow"], "unknown backend 'tensorflow'"),
        (["--classes", "0"], "--classes '0': 0 is out of range"),
        (["--classes", "20,x"], "'x' is not an integer"),
        (["--iters", "0"], "--iters 0"),
        (["--iters", "many"], "--iters 'many': expected an integer"),
        (["--batch", "1,,2"], "--batch '1,,2': expected a comma-separated list"),
        (["--batch", "-1"], "--batch"),
        (["--preset", "vit-h99"], "unknown preset 'vit-h99'"),
        (["--class-chunk", "0"], "--class-chunk 0: expected at least 1"),
        (["--class-chunk", "two"], "--class-chunk 'two': expected an integer"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(args, message, tmp_path):
    result = _run([*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing written before the arguments are good


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    """A tiny run of the reference with two unavailable GPU backends beside it."""
    out = tmp_path_factory.mktemp("bench-out")
    args = ["--preset", "tiny", "--backends", "torch,torch-cuda,torch-cuda-compile"]
    args += ["--classes", "2,4,6", "--batch", "1,2"]
    result = _run([*args, "--iters", "2", "--warmup", "0", "--out", str(out), "--artifacts", str(out / "none")])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "results.json").read_text()), result


def test_run_writes_valid_outputs(torch_run):
    out, data, result = torch_run
    validate_result(data)
    assert data["schema_version"].startswith("1.")
    names = ("summary.md", "latency_vs_classes.png", "memory_vs_classes.png", "bench_result.schema.json", "sample.png")
    for name in names:
        assert (out / name).stat().st_size > 0, name
    assert (out / "latency_vs_classes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind
    assert "| torch | 4 | 2 |" in result.stdout  # the Markdown table is printed
    assert not (out / "none").exists()  # torch alone needs no artifacts: nothing exported


def test_unavailable_backends_are_skipped_with_a_reason(torch_run):
    _, data, result = torch_run
    by = {b["name"]: b for b in data["backends"]}
    assert by["torch"]["status"] == "ok"
    for name in ("torch-cuda", "torch-cuda-compile"):
        assert by[name]["status"] == "skipped" and "CUDA" in by[name]["reason"]
        assert not [t for t in data["timings"] if t["backend"] == name]
    assert "| torch-cuda | skipped |" in result.stdout


def test_every_point_and_stage_is_measured(torch_run):
    _, data, _ = torch_run
    points = {(t, b) for t in (2, 4, 6) for b in (1, 2)}
    for stage in ("image_encoder", "text_encoder", "decoder", "end_to_end", "text_cold"):
        rows = [t for t in data["timings"] if t["backend"] == "torch" and t["stage"] == stage]
        assert {(t["classes"], t["batch"]) for t in rows} == points, stage
        for t in rows:
            assert t["timing"]["runs"] == 2 and t["timing"]["median_ms"] > 0
            assert t["gflops"] > 0 and 0 < t["utilisation_pct"] < 100
    assert {(m["classes"], m["batch"]) for m in data["memory"]} == points
    assert all(m["peak_rss_mib"] >= m["baseline_rss_mib"] > 0 for m in data["memory"])
    # the fresh-process peak holds torch and the model: more than the in-process working memory
    assert all(m["process_peak_rss_mib"] > m["delta_rss_mib"] for m in data["memory"])
    fresh = next(b for b in data["backends"] if b["name"] == "torch")["details"]["fresh_process"]
    assert fresh["error"] is None and fresh["torch_imported"] is True
    assert len(data["environment"]["load_average_start"]) == 3


def test_reference_parity_fields_hold(torch_run):
    _, data, _ = torch_run
    torch_rows = [p for p in data["parity"] if p["backend"] == "torch"]
    assert {p["graph"] for p in torch_rows} == {"image_encoder", "text_encoder", "decoder"}
    assert len({p["output"] for p in torch_rows}) == 5  # 3 image outputs, text embeddings, logits
    for p in torch_rows:  # the reference against itself: exact
        assert p["passed"] and p["polygraphy_pass"] and p["max_abs"] <= 1e-6 and p["cosine"] > 0.99999
    for t in data["task_parity"]:
        assert t["agreement"] == 1.0 and t["miou"] == 1.0


def test_fits_predict_from_the_measured_points(torch_run):
    _, data, _ = torch_run
    fits = [f for f in data["fits"] if f["backend"] == "torch" and f["stage"] == "end_to_end"]
    latency = [f for f in fits if f["metric"] == "median_ms" and f["variable"] == "classes"]
    assert {f["fixed"]["batch"] for f in latency} == {1, 2}
    for f in latency:
        assert f["points"] == 3 and f["r2"] is not None
        assert f["predictions"]["2000"] == pytest.approx(f["intercept"] + 2000 * f["slope"])
    assert [f for f in fits if f["variable"] == "batch"]
