"""Every console script: usage errors in one line (exit 2); escnet-eval --output DIR; the parity refusal."""

from __future__ import annotations

import importlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

SCRIPTS = {  # console script -> module with main()
    "escnet-info": "escnet.cli",
    "escnet-train": "escnet.training.cli",
    "escnet-eval": "escnet_bench.commands.evaluate",
    "escnet-export": "escnet_export.cli",
    "escnet-segment": "escnet_runtime.cli",
    "escnet-bench": "escnet_bench.cli",
    "escnet-demo": "escnet_bench.commands.demo",
}
CASES = [
    ("escnet-info", ["--classes", "two"], "escnet-info: error: Invalid value for '--classes'"),
    ("escnet-info", ["--classes", "0"], "escnet-info: error: Invalid value for '--classes'"),
    ("escnet-train", ["--batch-size", "two"], "escnet-train: error: Invalid value for '--batch-size'"),
    ("escnet-train", ["--no-such-flag"], "escnet-train: error: No such option: --no-such-flag"),
    ("escnet-eval", ["--root", "x"], "escnet-eval: error: Missing option '--dataset'"),
    ("escnet-eval", ["--dataset", "ade150", "--root", "x", "--limit", "many"], "escnet-eval: error: Invalid value"),
    ("escnet-export", ["onnx", "--opset", "x"], "escnet-export onnx: error: Invalid value for '--opset'"),
    ("escnet-export", ["onnx", "--bogus"], "escnet-export onnx: error: No such option: --bogus"),
    ("escnet-export", ["nosuch"], "escnet-export: error: No such command 'nosuch'"),
    ("escnet-segment", ["--batch-size", "x"], "escnet-segment: error: Invalid value for '--batch-size'"),
    ("escnet-segment", ["a.png", "--max-pixels"], "escnet-segment: error: Option '--max-pixels' requires an argument"),
    ("escnet-bench", ["--nope"], "escnet-bench: error: No such option: --nope"),
    ("escnet-demo", ["--nope"], "escnet-demo: error: No such option: --nope"),
    ("escnet-bench", ["--isolated-memory", "maybe"], "escnet-bench: error: Got unexpected extra argument"),
]


def _run_main(script: str, args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    main = importlib.import_module(SCRIPTS[script]).main
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.mark.parametrize("script, args, fragment", CASES)
def test_usage_errors_are_one_line(script: str, args: list[str], fragment: str, monkeypatch, capsys) -> None:
    code, out, err = _run_main(script, args, monkeypatch, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(fragment), err
    assert lines[0].endswith("--help)") and "Traceback" not in err and "╭" not in err + out


def test_every_console_script_is_covered() -> None:
    """Each [project.scripts] entry runs through the one-line usage wrapper."""
    import tomllib

    scripts = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == set(SCRIPTS) == {s for s, _, _ in CASES}
    for module in SCRIPTS.values():
        source = Path(importlib.import_module(module).__file__).read_text()
        assert "run_app(app, " in source, module


def test_help_and_success_exit_codes(monkeypatch, capsys) -> None:
    code, out, _ = _run_main("escnet-export", ["--help"], monkeypatch, capsys)
    assert code == 0 and "onnx" in out
    code, out, err = _run_main("escnet-export", [], monkeypatch, capsys)  # no command: the help, as before
    assert code == 2 and "Usage" in out + err


def test_console_script_process_one_line(tmp_path: Path) -> None:
    """The installed entry point itself (a separate process)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = "from escnet_runtime.cli import main; main()"
    r = subprocess.run(
        [sys.executable, "-c", code, "--class-chunk", "2.5"], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("escnet-segment: error: Invalid value for '--class-chunk'"), r.stderr


def test_eval_output_folder_is_refused_before_work(tmp_path: Path) -> None:
    from escnet_bench.commands.evaluate import app

    folder = tmp_path / "results"
    folder.mkdir()
    ckpt = tmp_path / "missing.safetensors"  # never opened: the --output check comes first
    args = ["--dataset", "synthetic", "--root", str(tmp_path), "--checkpoint", str(ckpt), "--no-progress"]
    r = CliRunner().invoke(app, [*args, "--output", str(folder)])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        f"error: --output {folder}: is a folder; expected a JSON file, e.g. {folder / 'metrics.json'}"
    ]
    assert list(folder.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(app, [*args, "--output", str(blocker / "m.json")])
    assert r.exit_code == 2 and r.output.strip() == f"error: --output {blocker / 'm.json'}: {blocker} is not a folder"


def test_eval_json_is_atomic_and_honours_the_umask(tmp_path: Path, tiny_model) -> None:
    from escnet_bench.commands.evaluate import app

    from escnet import save_checkpoint
    from escnet.data import SyntheticConfig, generate

    data = generate(tmp_path / "syn", SyntheticConfig(num_train=0, num_val=1, size=64))
    ckpt = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    out = tmp_path / "metrics" / "m.json"
    prior = os.umask(0o022)
    try:
        args = ["--dataset", "synthetic", "--root", str(data), "--checkpoint", str(ckpt), "--limit", "1"]
        r = CliRunner().invoke(app, [*args, "--no-progress", "--device", "cpu", "--output", str(out)])
    finally:
        os.umask(prior)
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["images"] == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.json"]


def test_parity_refusal_is_one_line_with_the_saved_table(tmp_path: Path, monkeypatch) -> None:
    import escnet_export.onnx.pipeline as pipeline
    import numpy as np
    from escnet_export.checks.parity import LOGITS_TOLERANCE, Comparison
    from escnet_export.cli import app

    def row(graph: str, max_abs: float, argmax: float) -> Comparison:
        return Comparison(graph, "logits", (3, 5, 32, 32), max_abs, max_abs / 10, 1.0, argmax, 1e-4, LOGITS_TOLERANCE)

    rows = [row(f"graph_{i}", 1e-6, 1.0) for i in range(18)] + [row("decoder", float(np.float32(0.25)), 0.5)]
    out = tmp_path / "artifacts"
    result = pipeline.ExportResult(out, None, {}, rows, 1.0, False)
    monkeypatch.setattr(pipeline, "run_export", lambda opts, step=None: result)
    r = CliRunner().invoke(app, ["onnx", "--preset", "tiny", "--out", str(out)])
    assert r.exit_code == 1
    # Off a terminal the export prints plain progress lines ("escnet-export onnx [ 0.0 s] ...") first.
    lines = [ln for ln in r.stderr.strip().splitlines() if not re.match(r"escnet-export \w+ \[ *[0-9.]+ s\]", ln)]
    report = tmp_path / "artifacts.parity-failed.txt"
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(
        "escnet-export: error: parity over tolerance in 1 of 19 checks (decoder/logits: max-abs 2.50e-01 > 1.00e-04; "
        "arg-max 50.0000% < 99.9%); nothing written,"
    )
    assert lines[0].endswith(f"full table in {report}") and r.stdout == ""
    text = report.read_text()
    assert "graph_17" in text and "decoder/logits: max-abs 2.50e-01 > 1.00e-04" in text
    assert not out.exists()


def test_bench_export_parity_refusal_is_one_line_with_the_saved_table(tmp_path: Path, monkeypatch, tiny_model) -> None:
    import escnet_export.onnx.pipeline as pipeline
    from escnet_bench.artifacts import ArtifactsError, ensure_artifacts
    from escnet_bench.options import build_options
    from escnet_export.checks.parity import LOGITS_TOLERANCE, Comparison

    bad = Comparison("decoder", "logits", (3, 5, 32, 32), 0.25, 0.01, 1.0, 0.5, 1e-4, LOGITS_TOLERANCE)
    out = tmp_path / "artifacts"
    monkeypatch.setattr(
        pipeline, "run_export", lambda opts, step=None: pipeline.ExportResult(out, None, {}, [bad], 1.0, False)
    )
    opts = build_options("tiny", "ort-cpu", "5", "1", 1, 0, str(out), str(tmp_path / "res"), None, True, 0, False, None)
    with pytest.raises(ArtifactsError) as e:
        ensure_artifacts(opts, tiny_model)
    report = tmp_path / "artifacts.parity-failed.txt"
    assert "\n" not in str(e.value) and str(e.value).endswith(f"full table in {report}")
    assert "1 of 1 checks, first decoder/logits: max-abs 2.50e-01 > 1.00e-04" in str(e.value)
    assert "decoder/logits" in report.read_text()
