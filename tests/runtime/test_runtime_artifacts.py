"""The tiny artifacts' manifest: it loads and verifies; tampered, missing and newer folders are refused."""

import json
import shutil
from pathlib import Path

import pytest
from escnet_runtime import FORMAT_VERSION, ManifestError, Segmenter, load_manifest
from support.artifacts import tiny_artifacts


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
