"""Issue 12, items 9 and 14 and the runtime's "Also" items: full disks and unwritable outputs
leave no partial set and later images are still tried; the Python API's one-line errors and
PIL images; outputs honour the umask; --precompute with images; BOM; folders as images; the
overlay blend in tiles."""

import contextlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import InputError, Segmenter
from escnet_runtime.cli import app
from PIL import Image
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner

CLASSES = "cat,grass,sky"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def seg(artifacts):
    return Segmenter(artifacts, disk_cache=False).set_vocabulary(CLASSES.split(","))


def _noise(path: Path, hw=(300, 300), seed=0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(path)
    return path


def _flat(path: Path, hw=(12, 16)) -> Path:
    Image.fromarray(np.full((*hw, 3), 90, dtype=np.uint8)).save(path)
    return path


def _segment(artifacts: Path, out: Path, *args: str):
    base = ["--artifacts", str(artifacts), "--out", str(out), "--no-disk-cache"]
    return CliRunner().invoke(app, [*args, *base])


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _outputs(*stems: str) -> list[str]:
    return sorted(f"{s}.{k}" for s in stems for k in ("json", "labels.png", "overlay.png"))


def _check_partial_failure(result, out: Path, failed: str) -> None:
    lines = result.stderr.strip().splitlines()
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [ln for ln in lines if ln.startswith("escnet-segment: error:")]
    assert len(errors) == 2 and f"{failed}." in errors[0] and "cannot write" in errors[0], result.stderr
    assert "1 of 3 images failed" in errors[1]
    assert _names(out) == _outputs("a", "c")  # nothing of the failed image, no temporaries


@contextlib.contextmanager
def _small_tmpfs(path: Path, size: str):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the RLIMIT_FSIZE test covers the same path")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_full_disk_keeps_no_partial_set_and_tries_later_images(artifacts, tmp_path):
    """A real full filesystem: a 128 KiB tmpfs; the middle image's overlay does not fit."""
    a, b, c = _flat(tmp_path / "a.png"), _noise(tmp_path / "b.png"), _flat(tmp_path / "c.png")
    with _small_tmpfs(tmp_path / "full", "128k") as out:
        result = _segment(artifacts, out, str(a), str(b), str(c), "--classes", CLASSES)
        _check_partial_failure(result, out, "b")


def test_file_size_limit_behaves_as_a_full_disk(artifacts, tmp_path):
    """Unprivileged variant: RLIMIT_FSIZE makes writes past 64 KiB fail (EFBIG) in a subprocess."""
    a, b, c = _flat(tmp_path / "a.png"), _noise(tmp_path / "b.png"), _flat(tmp_path / "c.png")
    out = tmp_path / "out"
    limit = 64 << 10

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [sys.executable, "-c", "from escnet_runtime.cli import app; app()", str(a), str(b), str(c)]
    cmd += ["--artifacts", str(artifacts), "--out", str(out), "--no-disk-cache", "--classes", CLASSES]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cap, timeout=300)
    _check_partial_failure(proc, out, "b")


def test_an_output_blocked_by_a_folder_rolls_back_the_image(artifacts, tmp_path):
    a, b, c = _flat(tmp_path / "a.png"), _flat(tmp_path / "b.png"), _flat(tmp_path / "c.png")
    out = tmp_path / "out"
    (out / "b.overlay.png").mkdir(parents=True)  # renaming onto it fails after labels were staged
    result = _segment(artifacts, out, str(a), str(b), str(c), "--classes", CLASSES)
    assert result.exit_code == 2 and "b.overlay.png" in result.stderr
    assert _names(out) == sorted([*_outputs("a", "c"), "b.overlay.png"])  # the folder, nothing else of b
    assert not list((out / "b.overlay.png").iterdir())


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_segments_honour_the_umask(artifacts, tmp_path, umask, mode):
    image = _flat(tmp_path / "a.png")
    old = os.umask(umask)
    try:
        result = _segment(artifacts, tmp_path / "out", str(image), "--classes", CLASSES)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    assert {(tmp_path / "out" / n).stat().st_mode & 0o777 for n in _outputs("a")} == {mode}


def test_precompute_with_images_is_refused(artifacts, tmp_path):
    image = _flat(tmp_path / "a.png")
    args = [str(image), "--classes", CLASSES, "--precompute", "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, [*args, "--artifacts", str(artifacts), "--out", str(tmp_path / "out")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "--precompute" in lines[0] and "no images" in lines[0]
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["\ufeffcat\nsky\n", "\ufeffcat\r\nsky\r\n", "cat\nsky"])
def test_classes_file_bom_is_stripped(artifacts, tmp_path, text):
    classes = tmp_path / "classes.txt"
    classes.write_bytes(text.encode("utf-8"))
    result = _segment(artifacts, tmp_path / "out", str(_flat(tmp_path / "a.png")), "--classes-file", str(classes))
    assert result.exit_code == 0, result.stderr
    import json

    assert json.loads((tmp_path / "out" / "a.json").read_text())["classes"] == ["cat", "sky"]


def test_a_folder_given_as_an_image(artifacts, tmp_path, seg):
    folder = tmp_path / "photos.png"
    folder.mkdir()
    result = _segment(artifacts, tmp_path / "out", str(folder), "--classes", CLASSES)
    lines = result.stderr.strip().splitlines()
    # The command line takes folders of images (escnet-segment DIR): an empty one is said as such.
    assert result.exit_code == 2 and len(lines) == 1 and "folder holds no image files" in lines[0]
    with pytest.raises(InputError, match="is a folder"):
        seg.segment(folder)
    with pytest.raises(InputError, match="no such file"):
        seg.segment(tmp_path / "absent.png")


# -- item 14: the Python API ------------------------------------------------------------------


@pytest.mark.parametrize(
    "images,expect",
    [
        (None, "got None"),
        (5, "got int"),
        (b"\x89PNG", "got bytes"),
        ({"a": 1}, "got dict"),
        ([], "no images"),
        ([None], "got None"),
        ([np.zeros((4, 4, 3), np.uint8), 3.5], "got float"),
        (np.zeros((4, 4), np.uint8), "shape"),
    ],
)
def test_segment_bad_inputs_are_one_line_input_errors(seg, images, expect):
    with pytest.raises(InputError) as info:
        seg.segment(images)
    assert expect in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "options,expect",
    [
        ({"class_chunk": 2.5}, "class_chunk must be a whole number"),
        ({"class_chunk": "4"}, "class_chunk must be a whole number"),
        ({"class_chunk": True}, "class_chunk must be a whole number"),
        ({"class_chunk": 0}, "class_chunk is 0"),
        ({"batch_size": 0}, "batch_size is 0"),
        ({"batch_size": -3}, "batch_size is -3"),
        ({"batch_size": 1.0}, "batch_size must be a whole number"),
        ({"batch_size": None}, "batch_size must be a whole number"),
    ],
)
def test_bad_segmenter_options_are_one_line_input_errors(artifacts, options, expect):
    with pytest.raises(InputError) as info:
        Segmenter(artifacts, disk_cache=False, **options)
    assert expect in str(info.value) and "\n" not in str(info.value)


def test_numpy_integers_are_accepted(artifacts):
    seg = Segmenter(artifacts, disk_cache=False, batch_size=np.int64(2), class_chunk=np.int32(2))
    assert seg.batch_size == 2 and seg.class_chunk == 2


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_pil_images_are_accepted(seg, mode):
    rgb = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    if mode == "I;16":
        pil = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        expected = np.repeat(rgb[..., :1], 3, axis=2)
    else:
        pil = Image.fromarray(rgb).convert(mode)
        expected = np.asarray(pil.convert("RGB"))
    got = seg.segment(pil)
    assert got.labels.shape == (30, 40)
    assert (got.labels == seg.segment(expected).labels).all()
    batch = seg.segment([pil, expected])
    assert (batch[0].labels == batch[1].labels).all()


def test_a_closed_pil_image_is_a_one_line_error(seg, tmp_path):
    pil = Image.open(_flat(tmp_path / "a.png"))
    pil.close()
    with pytest.raises(InputError) as info:
        seg.segment(pil)
    assert "\n" not in str(info.value)


# -- the overlay: tiles give the same pixels as one whole-image blend -----------------------


def test_tiled_blend_equals_the_whole_image_blend(monkeypatch):
    from escnet_runtime import render

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, (37, 23)).astype(np.int32)
    colours = render.palette(5)
    whole = image.astype(np.float32) * 0.5 + colours[labels].astype(np.float32) * 0.5
    whole = np.clip(np.rint(whole), 0, 255).astype(np.uint8)
    monkeypatch.setattr(render, "BLEND_TILE_PIXELS", 50)  # 2 rows per tile
    out = np.zeros_like(image)
    render.blend_into(out, image, labels, colours)
    assert (out == whole).all()
    overlay = np.asarray(render.overlay_image(image, labels, [f"c{i}" for i in range(5)]))
    assert (overlay[:37, :23] == whole).all() and overlay.shape[1] > 23
