"""Wrong options are one line naming the argument, before any work: ``Segmenter`` keyword arguments,
``--classes`` with a line break, a template that fills CLIP's context, ``--ov-cache`` where
nothing can be written."""

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.cli import app
from escnet_runtime.errors import InputError
from escnet_runtime.manifest import ManifestError
from PIL import Image
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _one_line(error: BaseException, *expect: str) -> None:
    message = str(error)
    assert "\n" not in message, message
    for text in expect:
        assert text in message, message


@pytest.mark.parametrize(
    "options,expect",
    [
        ({"colour": "red"}, ["unknown option colour"]),
        ({"cache_dir": 1}, ["cache_dir", "folder path", "int"]),
        ({"threads": "x"}, ["threads", "'x'"]),
        ({"threads": 0}, ["threads is 0"]),
        ({"disk_cache": "no"}, ["disk_cache", "True or False"]),
        ({"max_pixels": -5}, ["max_pixels is -5"]),
        ({"batch_size": 1.5}, ["batch_size", "whole number"]),
    ],
)
def test_segmenter_arguments_are_one_line(artifacts, options, expect):
    with pytest.raises(InputError) as caught:
        Segmenter(artifacts, **{"disk_cache": False, **options})
    _one_line(caught.value, *expect)


def test_ov_model_cache_dir_is_checked_before_the_backend_opens(artifacts, tmp_path):
    pytest.importorskip("openvino")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for path, expect in ((blocker, "is not a folder"), (blocker / "sub", "is a file, not a folder")):
        with pytest.raises(InputError) as caught:
            Segmenter(artifacts, backend="ov-cpu", disk_cache=False, model_cache_dir=path)
        _one_line(caught.value, "model_cache_dir", expect)


def _cli(artifacts: Path, tmp_path: Path, *args: str):
    image = tmp_path / "a.png"
    Image.fromarray(np.full((24, 32, 3), 90, dtype=np.uint8)).save(image)
    base = [str(image), "--artifacts", str(artifacts), "--out", str(tmp_path / "out"), "--no-disk-cache"]
    return CliRunner().invoke(app, [*base, *args])


def _refused(result, *expect: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("escnet-segment: error:"), result.stderr
    for text in expect:
        assert text in lines[0], lines[0]


def test_a_line_break_in_classes_is_one_line(artifacts, tmp_path):
    _refused(_cli(artifacts, tmp_path, "--classes", "cat\nsky,dog"), "class name 1", "control character")
    assert not (tmp_path / "out").exists()


@contextlib.contextmanager
def _read_only_folder(path: Path):
    """A folder nothing can be written into: a read-only tmpfs as root, else a 0555 folder."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_ov_cache_where_nothing_can_be_written(artifacts, tmp_path):
    pytest.importorskip("openvino")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    ov = ["--classes", "cat", "--backend", "ov-cpu", "--ov-cache"]
    _refused(_cli(artifacts, tmp_path, *ov, str(blocker)), "--ov-cache", "not a folder")
    with _read_only_folder(tmp_path / "ro") as ro:
        for where in (ro, ro / "cache"):
            _refused(_cli(artifacts, tmp_path, *ov, str(where)), "--ov-cache", "not writable")
    assert blocker.read_text() == "not a folder" and not (tmp_path / "out").exists()


def _with_template(artifacts: Path, tmp_path: Path, template: str) -> Path:
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["templates"] = [template]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_a_huge_template_is_refused_naming_the_template(artifacts, tmp_path):
    copy = _with_template(artifacts, tmp_path, "a photo of a {}. " + "x" * 100_000)
    with pytest.raises(ManifestError) as caught:
        Segmenter(copy, disk_cache=False)
    _one_line(caught.value, "templates[0]", "100017 characters")


def test_a_template_that_fills_the_context_is_refused(artifacts, tmp_path):
    copy = _with_template(artifacts, tmp_path, "a photo of a {}. " + "word " * 150)
    with pytest.raises(InputError) as caught:
        Segmenter(copy, disk_cache=False)
    _one_line(caught.value, "templates[0]", "alone is longer than CLIP's context")
    result = _cli(copy, tmp_path, "--classes", "cat")
    _refused(result, "templates[0]")
    assert "class name 'cat'" not in result.stderr  # the names are not blamed
