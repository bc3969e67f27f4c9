"""Tiny artifacts shared by the tests: exported once per session, and baked once from them.

The export (about a minute on two cores) runs once, into the session's base temporary folder,
from a checkpoint saved there, so the PyTorch reference can load the very same weights.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXPORT_TIMEOUT_S = 900


def _exporter_available() -> str | None:
    """None when `escnet-export onnx` can run, else the reason to skip."""
    try:
        import escnet_export.cli  # noqa: F401
        import escnet_export.onnx.pipeline  # noqa: F401
    except ImportError as e:
        return f"escnet_export is not available yet ({e})"
    return None


def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(artifacts folder, checkpoint) of a seeded tiny model; exported once per test session."""
    base = tmp_path_factory.getbasetemp() / "escnet_runtime_tiny"
    folder, checkpoint = base / "artifacts", base / "tiny.safetensors"
    if (folder / "manifest.json").is_file():
        return folder, checkpoint
    reason = _exporter_available()
    if reason:
        pytest.skip(reason)
    import torch

    from escnet import build_model, save_checkpoint

    base.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_checkpoint(build_model("tiny").eval(), checkpoint)
    staging = base / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", "onnx", "--preset", "tiny"]
    cmd += ["--checkpoint", str(checkpoint), "--out", str(staging)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
    assert proc.returncode == 0, f"export failed: {proc.stderr[-2000:]}"
    staging.rename(folder)
    return folder, checkpoint


BAKED_NAMES = ("sky", "grass", "a red car", "wall", "person")
BAKE_CHUNK = 2  # classes per decoder step: three uneven chunks


def tiny_baked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(baked folder, artifacts folder, checkpoint): baked once per session from the tiny artifacts."""
    artifacts, checkpoint = tiny_artifacts(tmp_path_factory)
    folder = artifacts.parent / "baked"
    if (folder / "manifest.json").is_file():
        return folder, artifacts, checkpoint
    from escnet_export.bake.command import BakeOptions, run_bake

    staging = artifacts.parent / "baked-staging"
    shutil.rmtree(staging, ignore_errors=True)
    run_bake(BakeOptions(artifacts, BAKED_NAMES, staging, class_chunk=BAKE_CHUNK))
    staging.rename(folder)
    return folder, artifacts, checkpoint


QUANTIZE_ARGS = ("--synthetic", "4", "--held-out", "2")  # four calibration images, two held-out scenes


def tiny_int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(int8 folder, stdout, stderr) of ``escnet-export quantize`` on the tiny artifacts, run once
    per session in a process of its own (a clean start, as a user runs it)."""
    artifacts, _ = tiny_artifacts(tmp_path_factory)
    base = artifacts.parent
    folder, log = base / "int8", base / "int8-output.txt"
    if (folder / "manifest.json").is_file():
        stdout, _, stderr = log.read_text().partition("\0")
        return folder, stdout, stderr
    cmd = [sys.executable, "-c", "from escnet_export.cli import main; main()", "quantize"]
    cmd += ["--artifacts", str(artifacts), *QUANTIZE_ARGS, "--out", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
    assert proc.returncode == 0, f"quantize failed: {proc.stderr[-2000:]}"
    log.write_text(proc.stdout + "\0" + proc.stderr)
    return folder, proc.stdout, proc.stderr
