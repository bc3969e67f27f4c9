"""Issue 12, item 4 and the umask: text-embedding cache entries carry a checksum and pass value
checks; a damaged entry is a miss, recomputed and atomically replaced, with one warning."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import Segmenter, TextEmbeddingCache
from escnet_runtime.cache import CacheDamagedWarning, entry_digest, entry_dtype
from escnet_runtime.cli import app
from PIL import Image
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner

KEY, OTHER = "ab" * 32, "cd" * 32
UNIT = np.full(4, 0.5, dtype=np.float32)  # a normalised (D = 4) embedding


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _entry(cache: TextEmbeddingCache, key: str) -> Path:
    return cache._path(key)


def _record(key: str, value: np.ndarray, digest_of: np.ndarray | None = None) -> np.ndarray:
    """A well-formed entry whose checksum covers ``digest_of`` (default: ``value``)."""
    record = np.zeros((), dtype=entry_dtype(len(value)))
    record["sha256"] = np.frombuffer(entry_digest(key, value if digest_of is None else digest_of), np.uint8)
    record["embedding"] = value
    return record


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip-embedding":
        data[-3] ^= 0x40
    elif how == "flip-checksum":
        data[-4 * 4 - 5] ^= 0x01
    elif how == "header":
        data[10:20] = b"[[[[ [[[[["  # the dict literal after magic, version and length
    elif how == "magic":
        data[:6] = b"\x00" * 6
    elif how == "truncated":
        data = data[: len(data) - 7]
    elif how == "empty":
        data = bytearray()
    elif how == "huge-shape":  # a header claiming 4 TB of data: refused before anything is allocated
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
            f.write(b"\0" * 64)
        return
    elif how == "trailing":
        data += b"\0\0\0\0"
    path.write_bytes(bytes(data))


def _save(path: Path, record: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, record, allow_pickle=False)


def _read_fresh(directory: Path, key: str = KEY) -> tuple[np.ndarray | None, list[str], TextEmbeddingCache]:
    cache = TextEmbeddingCache(directory, dim=4, expected_norm=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = cache.get(key)
    return value, [str(w.message) for w in caught if issubclass(w.category, CacheDamagedWarning)], cache


@pytest.mark.parametrize(
    "how", ["flip-embedding", "flip-checksum", "header", "magic", "truncated", "empty", "huge-shape", "trailing"]
)
def test_damaged_bytes_are_a_miss_with_one_warning(tmp_path, how):
    TextEmbeddingCache(tmp_path, dim=4, expected_norm=1.0).put(KEY, UNIT)
    path = _entry(TextEmbeddingCache(tmp_path, dim=4), KEY)
    _damage(path, how)
    value, warned, cache = _read_fresh(tmp_path)
    assert value is None and cache.stats.misses == 1 and cache.stats.damaged == 1
    assert len(warned) == 1 and "damaged entry" in warned[0] and "\n" not in warned[0]
    cache.put(KEY, UNIT)  # recomputed: replaced atomically
    value, warned, _ = _read_fresh(tmp_path)
    assert value is not None and value.tobytes() == UNIT.tobytes() and not warned


@pytest.mark.parametrize(
    "value",
    [
        np.array([np.nan, 0.5, 0.5, 0.5], np.float32),
        np.array([np.inf, 0, 0, 0], np.float32),
        np.zeros(4, np.float32),
        np.full(4, 5.0, np.float32),  # norm 10, expected 1
    ],
    ids=["nan", "inf", "zeros", "norm"],
)
def test_bad_values_with_a_valid_checksum_are_a_miss(tmp_path, value):
    cache = TextEmbeddingCache(tmp_path, dim=4, expected_norm=1.0)
    path = _entry(cache, KEY)
    path.parent.mkdir(parents=True)
    _save(path, _record(KEY, value))  # what an attacker could write: the checksum is right
    got, warned, fresh = _read_fresh(tmp_path)
    assert got is None and fresh.stats.damaged == 1 and len(warned) == 1


def test_another_keys_entry_and_other_layouts_are_misses(tmp_path):
    cache = TextEmbeddingCache(tmp_path, dim=4, expected_norm=1.0)
    cache.put(OTHER, UNIT)
    path = _entry(cache, KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_entry(cache, OTHER).read_bytes())  # a valid entry, for another key
    assert _read_fresh(tmp_path)[0] is None
    _save(path, UNIT)  # a layout-1 style plain array
    assert _read_fresh(tmp_path)[0] is None
    _save(path, _record(KEY, np.full(8, 0.5**1.5, np.float32)))  # another dimension
    assert _read_fresh(tmp_path)[0] is None


def test_only_one_warning_for_many_damaged_entries(tmp_path):
    cache = TextEmbeddingCache(tmp_path, dim=4, expected_norm=1.0)
    keys = [f"{i:02x}" * 32 for i in range(5)]
    for k in keys:
        cache.put(k, UNIT)
        _damage(_entry(cache, k), "flip-embedding")
    fresh = TextEmbeddingCache(tmp_path, dim=4, expected_norm=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert all(fresh.get(k) is None for k in keys)
    assert len([w for w in caught if issubclass(w.category, CacheDamagedWarning)]) == 1
    assert fresh.stats.damaged == 5


def test_bad_values_are_never_written(tmp_path):
    cache = TextEmbeddingCache(tmp_path, dim=4, expected_norm=1.0)
    cache.put(KEY, np.array([np.nan, 1, 0, 0], np.float32))
    assert not list(tmp_path.rglob("*.npy")) and cache.stats.disk_writes == 0


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_entries_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        TextEmbeddingCache(tmp_path, dim=4, expected_norm=1.0).put(KEY, UNIT)
    finally:
        os.umask(old)
    (path,) = tmp_path.rglob("*.npy")
    assert path.stat().st_mode & 0o777 == mode


def _segment(artifacts: Path, tmp_path: Path, cache: Path, name: str):
    image = tmp_path / "img.png"
    if not image.exists():
        Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(image)
    out = tmp_path / name
    args = [str(image), "--artifacts", str(artifacts), "--classes", "cat,grass,sky", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--cache-dir", str(cache)])
    return result, np.asarray(Image.open(out / "img.labels.png")) if result.exit_code == 0 else None


@pytest.mark.parametrize("how", ["flip-embedding", "nan", "zeros", "header", "truncated"])
def test_segment_repairs_a_damaged_cache(artifacts, tmp_path, how):
    cache = tmp_path / "cache"
    first, clean = _segment(artifacts, tmp_path, cache, "clean")
    assert first.exit_code == 0, first.stderr
    entries = sorted(cache.rglob("*.npy"))
    for path in entries[:3]:  # several damaged entries: still one warning line
        if how in ("nan", "zeros"):
            record = np.load(path)
            bad = np.zeros_like(record["embedding"])
            if how == "nan":
                bad[:] = record["embedding"]
                bad[0] = np.nan
            _save(path, _record(path.stem, bad))
        else:
            _damage(path, how)
    result, labels = _segment(artifacts, tmp_path, cache, "damaged")
    assert result.exit_code == 0, result.stderr
    warnings_ = [ln for ln in result.stderr.splitlines() if "warning" in ln]
    assert len(warnings_) == 1 and "damaged" in warnings_[0] and "Traceback" not in result.stderr
    assert (labels == clean).all()
    again, labels = _segment(artifacts, tmp_path, cache, "repaired")  # replaced: no warning now
    assert again.exit_code == 0 and "warning" not in again.stderr and (labels == clean).all()


def test_cached_embeddings_equal_a_fresh_encode_after_repair(artifacts, tmp_path):
    names = ["cat", "grass", "sky"]
    fresh = Segmenter(artifacts, disk_cache=False).encode_vocabulary(names)
    seg = Segmenter(artifacts, cache_dir=tmp_path)
    seg.encode_vocabulary(names)
    for path in tmp_path.rglob("*.npy"):
        _damage(path, "flip-embedding")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheDamagedWarning)
        again = Segmenter(artifacts, cache_dir=tmp_path)
        assert again.encode_vocabulary(names).tobytes() == fresh.tobytes()
    assert again.cache.stats.damaged == len(names) * len(again.templates)
    third = Segmenter(artifacts, cache_dir=tmp_path)
    assert third.encode_vocabulary(names).tobytes() == fresh.tobytes() and third.cache.stats.damaged == 0
