"""Bounded fuzz runs (hypothesis) of the Python parsers of outside bytes: the artifacts manifest
(JSON), the vocabulary file's header (safetensors) and PNG input. Every input is either parsed
into a correct result or refused with the parser's own one-line error; nothing else escapes."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from escnet_runtime.cache import ModelIdentity
from escnet_runtime.errors import InputError
from escnet_runtime.image_io import load_image
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest
from escnet_runtime.vocab_checks import VocabularyFile, parse_vocabulary
from escnet_runtime.vocab_file import write_vocabulary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from support.artifacts import tiny_artifacts

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value: keys of objects, indices of lists."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _edited(value: Any, path: tuple, new: Any) -> Any:
    """``value`` with the item at ``path`` replaced by ``new`` (a copy)."""
    if not path:
        return new
    out = json.loads(json.dumps(value))
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return out


def _one_line(error: Exception) -> None:
    assert "\n" not in str(error) and str(error), repr(error)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("fuzz") / "artifacts"
    shutil.copytree(tiny_artifacts(tmp_path_factory)[0], copy)
    return copy


def _load(folder: Path, text: str | bytes) -> None:
    (folder / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    try:
        manifest = load_manifest(folder, verify=False)
    except ManifestError as e:
        _one_line(e)
        return
    assert isinstance(manifest, Manifest) and manifest.graphs


def test_fuzz_manifest_fields(folder: Path) -> None:
    base = json.loads((folder / "manifest.json").read_text())
    paths = _paths(base)

    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(paths), JSON), min_size=1, max_size=3))
    def run(edits: list[tuple[tuple, Any]]) -> None:
        data = base
        for path, value in edits:
            try:
                data = _edited(data, path, value)
            except (KeyError, IndexError, TypeError):  # an earlier edit removed the path
                continue
        _load(folder, json.dumps(data))

    try:
        run()
    finally:
        (folder / "manifest.json").write_text(json.dumps(base))


def test_fuzz_manifest_bytes(folder: Path) -> None:
    base = (folder / "manifest.json").read_bytes()

    @FUZZ
    @given(st.binary(max_size=64) | st.text(max_size=64), st.integers(0, len(base)), st.integers(0, 64))
    def run(insert: bytes | str, at: int, cut: int) -> None:
        piece = insert.encode("utf-8", "surrogatepass") if isinstance(insert, str) else insert
        _load(folder, base[:at] + piece + base[at + cut :])

    try:
        run()
    finally:
        (folder / "manifest.json").write_bytes(base)


def _vocabulary_bytes(tmp: Path) -> bytes:
    emb = np.random.default_rng(0).normal(size=(3, 2, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)  # (T, P, D), unit vectors
    ident = ModelIdentity("a" * 64, "b" * 64, 77, "fp32")
    write_vocabulary(tmp / "v.escvocab", VocabularyFile(("sky", "grass", "a red car"), ("a {}.", "the {}"), emb, ident))
    return (tmp / "v.escvocab").read_bytes()


def _parse_vocabulary(data: bytes) -> None:
    try:
        vocab = parse_vocabulary(data)
    except InputError as e:
        _one_line(e)
        return
    t, p, _ = vocab.embeddings.shape
    assert len(vocab.class_names) == t and len(vocab.templates) == p and len(vocab.colours) == t
    assert np.isfinite(vocab.embeddings).all()


def test_fuzz_vocabulary_header(tmp_path: Path) -> None:
    data = _vocabulary_bytes(tmp_path)
    (n,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]
    paths = _paths(header)

    @FUZZ
    @given(st.sampled_from(paths), JSON, st.booleans())
    def run(path: tuple, value: Any, keep_length: bool) -> None:
        try:
            text = json.dumps(_edited(header, path, value)).encode("utf-8")
        except (KeyError, IndexError, TypeError):
            return
        length = n if keep_length else len(text)  # a stated length that lies about the header, too
        _parse_vocabulary(struct.pack("<Q", length) + text + body)

    run()


def test_fuzz_vocabulary_bytes(tmp_path: Path) -> None:
    data = _vocabulary_bytes(tmp_path)

    @FUZZ
    @given(st.integers(0, len(data) - 1), st.binary(min_size=1, max_size=16), st.integers(0, len(data)))
    def run(at: int, piece: bytes, end: int) -> None:
        _parse_vocabulary((data[:at] + piece + data[at + len(piece) :])[: max(end, 1)])

    run()


def _png(mode: str) -> bytes:
    rng = np.random.default_rng(1)
    img = {
        "RGB": lambda: Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)),
        "P": lambda: Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).convert("P"),
        "I;16": lambda: Image.fromarray(rng.integers(0, 65536, (6, 8), dtype=np.uint16)),
        "RGBA": lambda: Image.fromarray(rng.integers(0, 256, (6, 8, 4), dtype=np.uint8)),
    }[mode]()
    buf = BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _with_ihdr(png: bytes, width: int, height: int, depth: int, colour: int) -> bytes:
    """``png`` with its IHDR rewritten (and its CRC recomputed, so the decoder reads it)."""
    body = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    chunk = b"IHDR" + body
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


MAX_PIXELS = 1 << 16


def _read_png(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        image = load_image(path, MAX_PIXELS)
    except InputError as e:
        _one_line(e)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 1 <= image.shape[0] * image.shape[1] <= MAX_PIXELS


def test_fuzz_png_bytes(tmp_path: Path) -> None:
    bases = [_png(m) for m in ("RGB", "P", "I;16", "RGBA")]

    @FUZZ
    @given(st.sampled_from(bases), st.integers(0, 400), st.binary(min_size=1, max_size=8), st.integers(1, 400))
    def run(png: bytes, at: int, piece: bytes, end: int) -> None:
        _read_png(tmp_path / "x.png", (png[:at] + piece + png[at + len(piece) :])[:end])

    run()


def test_fuzz_png_header(tmp_path: Path) -> None:
    bases = [_png(m) for m in ("RGB", "P", "I;16", "RGBA")]
    size = st.integers(0, 2**32 - 1) | st.integers(0, 64)
    depths, colours = st.sampled_from([1, 2, 4, 8, 16, 3, 0]), st.sampled_from([0, 2, 3, 4, 6, 1, 7])

    @FUZZ
    @given(st.sampled_from(bases), size, size, depths, colours)
    def run(png: bytes, width: int, height: int, depth: int, colour: int) -> None:
        _read_png(tmp_path / "x.png", _with_ihdr(png, width, height, depth, colour))

    run()
