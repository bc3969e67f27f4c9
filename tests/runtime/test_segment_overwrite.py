"""``escnet-segment`` never replaces a file it did not write, nor writes into the artifacts folder
it reads, without ``--overwrite``: one line, exit 2, nothing written. Its own outputs of an
earlier run are replaced."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime.cli import app
from PIL import Image
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _rgb(path: Path, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(path)
    return path


def _state(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")}


def _segment(artifacts: Path, *args: str):
    base = ["--artifacts", str(artifacts), "--classes", "cat,sky", "--no-disk-cache"]
    return CliRunner().invoke(app, [*args, *base])


def _refused(result, *expect: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("escnet-segment: error:"), result.stderr
    for text in expect:
        assert text in lines[0], lines[0]
    return lines[0]


def test_the_photos_folder_keeps_the_users_files(artifacts, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = _rgb(photos / "photo.png")
    (photos / "photo.json").write_text('{"mine": "notes about the photo"}\n')
    _rgb(photos / "photo.overlay.png", seed=9)  # an unrelated picture of the user's
    before = _state(photos)
    line = _refused(_segment(artifacts, str(photo), "--out", str(photos)), "did not write it", "--overwrite")
    assert "photo" in line
    assert _state(photos) == before  # nothing replaced, nothing added
    again = _segment(artifacts, str(photo), "--out", str(photos), "--overwrite")
    assert again.exit_code == 0, again.stderr
    assert (photos / "photo.labels.png").is_file() and "mine" not in (photos / "photo.json").read_text()


def test_a_second_run_replaces_only_its_own_outputs(artifacts, tmp_path):
    """A previous run's three outputs (their JSON is its record) are replaced without a flag; a
    folder where one output is the user's file is not."""
    image, out = _rgb(tmp_path / "a.png"), tmp_path / "out"
    assert _segment(artifacts, str(image), "--out", str(out)).exit_code == 0
    again = _segment(artifacts, str(image), "--out", str(out))
    assert again.exit_code == 0, again.stderr
    (out / "a.json").write_text('{"label_png": "other.labels.png", "shares": {}}')  # not a.png's record
    before = _state(out)
    _refused(_segment(artifacts, str(image), "--out", str(out)), "a.", "did not write it")
    assert _state(out) == before


def test_no_output_into_the_artifacts_folder(artifacts, tmp_path):
    image, before = _rgb(tmp_path / "a.png"), _state(artifacts)
    for out in (artifacts, artifacts / "sub"):
        _refused(_segment(artifacts, str(image), "--out", str(out)), "inside the artifacts folder")
    assert _state(artifacts) == before and not (artifacts / "sub").exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_vocabulary_file_never_replaces_the_manifest(artifacts, tmp_path, overwrite):
    before = _state(artifacts)
    flags = ["--precompute", "--vocab-out", str(artifacts / "manifest.json"), *(["--overwrite"] * overwrite)]
    _refused(_segment(artifacts, *flags), "--vocab-out", "manifest.json")
    flags[2] = str(artifacts / "text_encoder.onnx")
    _refused(_segment(artifacts, *flags), "--vocab-out", "text_encoder.onnx")
    assert _state(artifacts) == before


def test_an_existing_vocabulary_file_needs_overwrite(artifacts, tmp_path):
    target = tmp_path / "mine.escvocab"
    target.write_text("the user's own file")
    _refused(_segment(artifacts, "--precompute", "--vocab-out", str(target)), "did not write it")
    assert target.read_text() == "the user's own file"
    done = _segment(artifacts, "--precompute", "--vocab-out", str(target), "--overwrite")
    assert done.exit_code == 0, done.stderr
    assert target.read_bytes()[8:9] == b"{"  # a safetensors header now
    again = _segment(artifacts, "--precompute", "--vocab-out", str(target))  # a vocabulary file: replaced
    assert again.exit_code == 0, again.stderr


def test_an_output_is_never_an_input_image(artifacts, tmp_path):
    """``a.png``'s overlay would be ``a.overlay.png``, itself an input: refused even with --overwrite."""
    a, overlay = _rgb(tmp_path / "a.png"), _rgb(tmp_path / "a.overlay.png", seed=2)
    before = overlay.read_bytes()
    result = _segment(artifacts, str(overlay), str(a), "--out", str(tmp_path), "--overwrite")
    _refused(result, "also an input image")
    assert overlay.read_bytes() == before and not (tmp_path / "a.labels.png").exists()
