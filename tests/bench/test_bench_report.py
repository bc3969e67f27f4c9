"""The Markdown summary: derived columns and the published-figures table, from a result document."""

from __future__ import annotations

import copy

from escnet_bench.report import PUBLISHED_VIT_B, markdown_summary


def _timing(backend: str, classes: int, stage: str, median_ms: float) -> dict:
    timing = {"runs": 3, "warmup": 1, "items": 1, "item_unit": "images", "median_ms": median_ms, "mean_ms": median_ms}
    timing |= {"p90_ms": median_ms, "p99_ms": median_ms, "min_ms": median_ms, "max_ms": median_ms, "stdev_ms": 0.0}
    timing["throughput"] = 1e3 / median_ms
    row = {"backend": backend, "classes": classes, "batch": 1, "stage": stage, "timing": timing}
    return row | {"first_call_ms": None, "gflops": None, "achieved_gflops_per_s": None, "utilisation_pct": None}


def _backend(name: str, device: str, status: str = "ok") -> dict:
    return {"name": name, "family": "torch", "device": device, "precision": "fp32", "description": "", "status": status}


DATA = {
    "schema_version": "1.0.0",
    "created_utc": "2026-01-01T00:00:00+00:00",
    "duration_s": 1.0,
    "options": {"preset": "tiny", "classes": [150], "batch": [1], "warmup": 1, "iters": 3},
    "environment": {"cpu": "x", "cpu_count": 2, "torch_threads": 2, "gpu": None},
    "peaks": [{"device": "cpu", "dtype": "fp32", "gflops_per_s": 100.0}],
    "backends": [_backend("torch", "cpu"), _backend("ort-cpu", "cpu"), _backend("torch-cuda", "cuda")],
    "timings": [
        _timing("torch", 150, "end_to_end", 400.0),
        _timing("torch", 150, "image_encoder", 100.0),
        _timing("torch", 150, "decoder", 250.0),
        _timing("ort-cpu", 150, "end_to_end", 200.0),
        _timing("torch-cuda", 150, "end_to_end", 50.0),
    ],
    "memory": [],
    "parity": [],
    "task_parity": [],
    "fits": [],
}


def test_end_to_end_row_has_speedup_and_time_outside_the_graphs():
    text = markdown_summary(DATA)
    torch_row = next(line for line in text.splitlines() if line.startswith("| torch | 150 | 1 | 400.0"))
    cells = [c.strip() for c in torch_row.strip("|").split("|")]
    assert cells[6:8] == ["350.0", "50.0"]  # graphs = 100 + 250, other = 400 - 350
    ort_row = next(line for line in text.splitlines() if line.startswith("| ort-cpu | 150 | 1 |"))
    assert "| 2.00 |" in ort_row  # 400 / 200: twice as fast as the reference in the same run


def test_published_figures_only_for_vit_b16_gpu_rows():
    assert "published" not in markdown_summary(DATA).lower()
    data = copy.deepcopy(DATA)
    data["options"]["preset"] = "vit-b16"
    data["environment"]["gpu"] = {"name": "Test GPU"}
    text = markdown_summary(data)
    assert "this GPU: Test GPU" in text
    assert f"| torch-cuda | 150 | 1 | 20.00 | {PUBLISHED_VIT_B[150]} |" in text
    assert "| torch | 150 | 1 | 2.50 |" not in text.split("published ESC-Net")[1].split("##")[0]  # CPU rows excluded


def test_busy_machine_is_flagged():
    assert "busy" not in markdown_summary(DATA)
    data = copy.deepcopy(DATA)
    data["environment"]["load_average_start"] = [5.0, 4.0, 3.0]
    assert "machine was busy** (1-minute load average up to 5.0 on 2 cores)" in markdown_summary(data)


def test_two_point_fits_carry_a_warning():
    data = copy.deepcopy(DATA)
    fit = {"backend": "torch", "stage": "end_to_end", "metric": "median_ms", "variable": "classes"}
    fit |= {"fixed": {"batch": 1}, "predictions": {"2000": 9.0}, "intercept": 1.0, "slope": 0.004, "r2": None}
    data["fits"] = [fit | {"points": 3, "r2": 0.99}]
    assert "two points" not in markdown_summary(data)
    data["fits"] = [fit | {"points": 2}]
    text = markdown_summary(data)
    assert "two points have no r²" in text and "| torch | end_to_end | median_ms | 1 |" in text


def test_backend_table_shows_each_class_chunk():
    data = copy.deepcopy(DATA)
    data["backends"][0]["details"] = {"class_chunk": 64}
    data["backends"][1]["details"] = {"class_chunk": None}
    lines = markdown_summary(data).splitlines()
    assert "class chunk" in lines[lines.index("## Backends") + 4]  # note, blank line, then the header
    assert any(line.startswith("| torch | ok | cpu | fp32 | 64 |") for line in lines)
    assert any(line.startswith("| ort-cpu | ok | cpu | fp32 | all |") for line in lines)
    assert any(line.startswith("| torch-cuda | ok | cuda | fp32 | - |") for line in lines)  # no details


def test_peak_names_each_library():
    by_library = {"torch": 199.0, "onnxruntime": 397.0}
    peak = {"device": "cpu", "dtype": "fp32", "gflops_per_s": 397.0, "by_library": by_library}
    text = markdown_summary({**DATA, "peaks": [peak]})
    assert "cpu fp32 397 GFLOP/s (torch 199, onnxruntime 397; the best is the ceiling)" in text
    assert "cpu fp32 100 GFLOP/s." in markdown_summary(DATA)  # older results: no by_library
