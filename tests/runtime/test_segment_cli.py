"""``escnet-segment`` on tiny artifacts: outputs; every bad input -> one line, exit 2, no partial file."""

import json
import struct
import zlib
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


def _rgb(path: Path, hw=(48, 64), seed=0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(path)
    return path


def _huge_png_header(path: Path, w: int, h: int) -> Path:
    """A PNG whose header claims w x h (no pixel data is needed to refuse it)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    return path


def _rgb16_png(path: Path, h: int, w: int) -> Path:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    arr = np.random.default_rng(5).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in arr)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def _invoke(artifacts: Path, tmp_path: Path, *args: str):
    out = tmp_path / "out"
    base = ["--artifacts", str(artifacts), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, [*args, *base])
    return result, out


def _files(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*")) if out.exists() else []


def _assert_user_error(result, out: Path, expect: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("escnet-segment: error:"), result.stderr
    assert expect in lines[0]
    assert _files(out) == []


def test_writes_labels_overlay_and_shares(artifacts, tmp_path):
    a, b = _rgb(tmp_path / "a.png"), _rgb(tmp_path / "b.jpg", (70, 33), seed=1)
    result, out = _invoke(artifacts, tmp_path, str(a), str(b), "--classes", "cat, grass,sky", "--sliding-window")
    assert result.exit_code == 0, result.stderr
    assert _files(out) == sorted(f"{s}.{k}" for s in "ab" for k in ("json", "labels.png", "overlay.png"))
    record = json.loads((out / "b.json").read_text())
    assert record["classes"] == ["cat", "grass", "sky"] and (record["height"], record["width"]) == (70, 33)
    assert abs(sum(record["shares"].values()) - 1) < 1e-9
    labels = Image.open(out / "b.labels.png")
    assert labels.mode == "P" and labels.size == (33, 70) and np.asarray(labels).max() < 3
    counts = np.bincount(np.asarray(labels).ravel(), minlength=3) / (70 * 33)
    assert np.allclose(counts, [record["shares"][c] for c in record["classes"]])
    overlay = Image.open(out / "b.overlay.png")
    assert overlay.size[0] > 33 and overlay.size[1] >= 70  # legend panel on the right


@pytest.mark.parametrize("kind", ["gray", "rgba", "gray16", "rgb16", "palette", "one_pixel"])
def test_unusual_images_are_handled(artifacts, tmp_path, kind):
    rng = np.random.default_rng(7)
    path = tmp_path / f"{kind}.png"
    if kind == "gray":
        Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8), mode="L").save(path)
    elif kind == "rgba":
        Image.fromarray(rng.integers(0, 256, (40, 30, 4), dtype=np.uint8), mode="RGBA").save(path)
    elif kind == "gray16":
        Image.fromarray(rng.integers(0, 65536, (40, 30), dtype=np.uint16)).save(path)
    elif kind == "rgb16":
        _rgb16_png(path, 40, 30)
    elif kind == "palette":
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).convert("P").save(path)
    else:
        Image.fromarray(np.full((1, 1, 3), 200, dtype=np.uint8)).save(path)
    result, out = _invoke(artifacts, tmp_path, str(path), "--classes", "cat,sky")
    assert result.exit_code == 0, result.stderr
    size = (1, 1) if kind == "one_pixel" else (30, 40)
    assert Image.open(out / f"{kind}.labels.png").size == size


def test_bad_images(artifacts, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    result, out = _invoke(artifacts, tmp_path, str(text), "--classes", "cat,sky")
    _assert_user_error(result, out, "not an image")

    huge = _huge_png_header(tmp_path / "huge.png", 20000, 20000)
    result, out = _invoke(artifacts, tmp_path, str(huge), "--classes", "cat,sky")
    _assert_user_error(result, out, "20000x20000")

    result, out = _invoke(artifacts, tmp_path, str(tmp_path / "absent.png"), "--classes", "cat,sky")
    _assert_user_error(result, out, "no such file")


def test_truncated_image_writes_nothing_for_it(artifacts, tmp_path):
    good = _rgb(tmp_path / "good.png", (64, 64))
    whole = _rgb(tmp_path / "whole.png", (64, 64), seed=3).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])
    result, out = _invoke(artifacts, tmp_path, str(cut), "--classes", "cat,sky")
    _assert_user_error(result, out, "truncated")
    result, out = _invoke(artifacts, tmp_path, str(cut), str(good), "--classes", "cat,sky")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 2  # its error, the summary
    assert _files(out) == ["good.json", "good.labels.png", "good.overlay.png"]  # no temporary or half file


@pytest.mark.parametrize(
    "classes,expect",
    [("", "class name 1"), ("cat,,sky", "class name 2"), ("cat,sky, Cat", "duplicate"), (" , ", "non-blank")],
)
def test_bad_class_lists(artifacts, tmp_path, classes, expect):
    result, out = _invoke(artifacts, tmp_path, str(_rgb(tmp_path / "a.png")), "--classes", classes)
    _assert_user_error(result, out, expect)


def test_class_list_options(artifacts, tmp_path):
    image = str(_rgb(tmp_path / "a.png"))
    result, out = _invoke(artifacts, tmp_path, image)
    _assert_user_error(result, out, "exactly one of")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result, out = _invoke(artifacts, tmp_path, image, "--classes-file", str(empty))
    _assert_user_error(result, out, "empty")


def test_long_class_name_warns_and_runs(artifacts, tmp_path):
    long_name = "very " * 99 + "long"  # 500 characters, far beyond 77 tokens
    result, out = _invoke(artifacts, tmp_path, str(_rgb(tmp_path / "a.png")), "--classes", f"cat,{long_name}")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and "truncated" in lines[0]
    assert json.loads((out / "a.json").read_text())["classes"][1] == long_name


def test_five_thousand_classes(artifacts, tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"class number {i}" for i in range(5000)) + "\n")
    result, out = _invoke(artifacts, tmp_path, str(_rgb(tmp_path / "a.png", (32, 40))), "--classes-file", str(names))
    assert result.exit_code == 0, result.stderr
    labels = np.asarray(Image.open(out / "a.labels.png"))
    assert labels.shape == (32, 40) and labels.max() < 5000
    assert len(json.loads((out / "a.json").read_text())["shares"]) == 5000


def test_bad_artifacts_and_backends(artifacts, tmp_path):
    image = str(_rgb(tmp_path / "a.png"))
    result, out = _invoke(tmp_path / "nowhere", tmp_path, image, "--classes", "cat")
    _assert_user_error(result, out, "manifest.json")
    result, out = _invoke(artifacts, tmp_path, image, "--classes", "cat", "--backend", "ort-cuda")
    _assert_user_error(result, out, "CUDAExecutionProvider")
    result, out = _invoke(artifacts, tmp_path, image, "--classes", "cat", "--backend", "magic")
    _assert_user_error(result, out, "unknown backend")
    result, out = _invoke(artifacts, tmp_path, image, "--classes", "cat", "--class-chunk", "0")
    _assert_user_error(result, out, "class_chunk is 0")


def test_class_chunk_option_gives_the_same_labels(artifacts, tmp_path):
    image = str(_rgb(tmp_path / "a.png", (48, 64)))
    classes = "cat,grass,sky,tree,road,person,car"
    whole, out_whole = _invoke(artifacts, tmp_path / "whole", image, "--classes", classes)
    chunked, out_chunked = _invoke(artifacts, tmp_path / "chunked", image, "--classes", classes, "--class-chunk", "2")
    assert whole.exit_code == 0 and chunked.exit_code == 0, chunked.stderr
    a, b = (np.asarray(Image.open(o / "a.labels.png")) for o in (out_whole, out_chunked))
    assert a.shape == (48, 64) and (a == b).mean() >= 0.999


def test_unwritable_output_folder(artifacts, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    image = str(_rgb(tmp_path / "a.png"))
    args = [image, "--artifacts", str(artifacts), "--classes", "cat", "--out", str(blocker), "--no-disk-cache"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "output folder" in result.stderr and blocker.read_text() == "a file, not a folder"


def test_precompute_fills_the_cache(artifacts, tmp_path):
    result, _ = _invoke(artifacts, tmp_path, "--classes", "cat,sky,tree", "--precompute")
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3
    result, _ = _invoke(artifacts, tmp_path, "--classes", "cat,sky,tree", "--precompute")
    assert result.exit_code == 0 and "(0 new entries)" in result.stderr
