"""The real-size export: vit-b16 through escnet-export onnx and check (slow: minutes on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_vit_b16_export_and_check(tmp_path: Path) -> None:
    from escnet_export.checks.preflight import run_check
    from escnet_export.onnx.pipeline import ExportOptions, run_export
    from escnet_runtime.manifest import load_manifest

    result = run_export(ExportOptions(preset="vit-b16", out=tmp_path / "b16"))
    assert result.published and result.passed, [r.failures for r in result.parity]
    manifest = load_manifest(tmp_path / "b16")
    assert manifest.preset == "vit-b16" and manifest.preprocess.image_size == 384
    logits = [r for r in result.parity if r.tensor == "logits"]
    assert logits and all(r.max_abs <= 1e-4 and r.argmax >= 0.999 for r in logits)
    report = run_check(tmp_path / "b16")
    assert report.ready, [f.message for g in report.graphs for f in g.errors]
    assert all(d.finite for r in report.fp16 for d in r.with_fp32_layers)
