"""Tiny artifacts for the runtime tests (exported once per session), and the manifest checks.

Other runtime test modules import ``tiny_artifacts`` from here: the export (about a minute on
two cores) runs once, into the session's base temporary folder, from a checkpoint saved here,
so the PyTorch reference can load the very same weights.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from escnet_runtime import FORMAT_VERSION, ManifestError, Segmenter, load_manifest

EXPORT_TIMEOUT_S = 900


def _exporter_available() -> str | None:
    """None when `escnet-export onnx` can run, else the reason to skip."""
    try:
        import escnet_export.cli  # noqa: F401
        import escnet_export.onnx_pipeline  # noqa: F401
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


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_manifest_loads_and_verifies(artifacts):
    m = load_manifest(artifacts)
    steps = {
        "decoder_open",
        "decoder_block_0",
        "decoder_attend_0",
        "decoder_block_1",
        "decoder_close",
    }  # tiny: 2 blocks
    assert m.format_version == FORMAT_VERSION and set(m.graphs) == {"image_encoder", "text_encoder", "decoder"} | steps
    assert m.tokenizer.vocab_file in m.files and all(g.file in m.files for g in m.graphs.values())


def test_tampered_missing_and_newer_artifacts_are_refused(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    with open(folder / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match="does not match the manifest"):
        Segmenter(folder)
    (folder / "decoder.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        Segmenter(folder)
    folder = _copy(artifacts, tmp_path / "b")
    data = json.loads((folder / "manifest.json").read_text())
    data["format_version"] = FORMAT_VERSION + 1
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="newer than this runtime supports"):
        Segmenter(folder)
    with pytest.raises(ManifestError, match="no manifest.json"):
        Segmenter(tmp_path)
