"""``escnet-segment`` says what it did: a line per image (outputs, top classes), a summary, the
weights' provenance in each JSON (and a notice when they are a random init); folders, globs and
``-`` (paths on stdin) as inputs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime.cli import app
from escnet_runtime.contract import random_init_provenance
from escnet_runtime.fileio import sha256_file
from escnet_runtime.image_list import expand_images, top_classes
from escnet_runtime.manifest import load_manifest, write_manifest
from PIL import Image
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner

CLASSES = "wall,floor,sky"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)


@pytest.fixture(scope="module")
def random_artifacts(exported, tmp_path_factory):
    """The tiny export with its manifest saying what escnet-export writes for a random init."""
    folder = tmp_path_factory.mktemp("random") / "artifacts"
    shutil.copytree(exported[0], folder)
    manifest = load_manifest(folder)
    write_manifest(folder, dataclasses.replace(manifest, provenance=random_init_provenance(7)))
    return folder


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _segment(artifacts: Path, tmp_path: Path, *args: str, stdin: str | None = None):
    base = ["--artifacts", str(artifacts), "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    return CliRunner().invoke(app, [*args, "--classes", CLASSES, *base], input=stdin)


def test_export_records_the_checkpoint_it_came_from(exported):
    folder, checkpoint = exported
    provenance = load_manifest(folder).weights_provenance()
    assert provenance.weights == f"checkpoint sha256 {sha256_file(checkpoint)}"
    assert not provenance.random_init and provenance.notice() is None


def test_prints_a_line_per_image_and_a_summary(exported, tmp_path):
    images = _images(tmp_path / "in", 2)
    result = _segment(exported[0], tmp_path, *map(str, images))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    for image, line in zip(images, lines, strict=False):
        outs = [tmp_path / "out" / f"{image.stem}{s}" for s in (".labels.png", ".overlay.png", ".json")]
        assert line.startswith(f"{image} -> {', '.join(map(str, outs))}: ")
        shares = json.loads(outs[2].read_text())["shares"]
        assert line.endswith(top_classes(shares)) and "%" in line
        assert all(p.is_file() for p in outs)
    assert lines[2].startswith("segmented 2 images in ") and str(tmp_path / "out") in lines[2]
    assert "random" not in result.stderr  # trained-or-unknown weights: no notice


def test_random_init_is_said_once_and_recorded_in_the_json(random_artifacts, tmp_path):
    (image,) = _images(tmp_path / "in", 1)
    result = _segment(random_artifacts, tmp_path, str(image))
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "random init, seed 7" in line]
    assert len(notes) == 1 and notes[0].startswith("escnet-segment: note: ") and "noise" in notes[0]
    record = json.loads((tmp_path / "out" / "img0.json").read_text())
    assert record["weights"] == {"weights": "random init, seed 7", "random_init": True}


def test_folders_globs_and_stdin(exported, tmp_path):
    images = _images(tmp_path / "in", 3)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    by_folder = _segment(exported[0], tmp_path / "a", str(tmp_path / "in"))
    by_glob = _segment(exported[0], tmp_path / "b", str(tmp_path / "in" / "img[01].png"))
    by_stdin = _segment(exported[0], tmp_path / "c", "-", stdin=f"{images[2]}\n\n{images[0]}\n")
    for result, expected in ((by_folder, images), (by_glob, images[:2]), (by_stdin, [images[2], images[0]])):
        assert result.exit_code == 0, result.output
        printed = [line.split(" -> ")[0] for line in result.stdout.splitlines() if " -> " in line]
        assert printed == [str(p) for p in expected]


def test_empty_folder_and_glob_are_one_line_errors(exported, tmp_path):
    (tmp_path / "empty").mkdir()
    for arg in (str(tmp_path / "empty"), str(tmp_path / "*.jpg")):
        result = _segment(exported[0], tmp_path, arg)
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("escnet-segment: error: ") and arg in lines[0]
    assert not (tmp_path / "out").exists()


def test_expand_images_keeps_order_and_drops_duplicates(tmp_path):
    a, b = _images(tmp_path, 2)
    assert expand_images([b, str(tmp_path / "*.png"), a]) == [b, a]
