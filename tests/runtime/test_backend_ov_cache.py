"""The OpenVINO compiled-model cache: keyed and hashed entries, so damage means compiling again.

A blob with 64 flipped bytes is found by its sha256, said in one warning line, and compiled
again: the labels equal a fresh compile's, and the entry is replaced by a good one."""

import warnings

import numpy as np
import pytest
from escnet_runtime import Segmenter
from support.artifacts import tiny_artifacts

ov = pytest.importorskip("openvino")
from escnet_runtime.backends.ov_cache import CompiledCacheWarning  # noqa: E402

CLASSES = ["cat", "grass", "sky", "tree", "person"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _image() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)


def _labels(artifacts, **kw) -> tuple[np.ndarray, list[str]]:
    """Labels of one image, and the cache warnings raised on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CompiledCacheWarning)
        with Segmenter(artifacts, backend="ov-cpu", disk_cache=False, **kw) as seg:
            labels = seg.set_vocabulary(CLASSES).segment(_image()).labels
    return labels, [str(w.message) for w in caught if issubclass(w.category, CompiledCacheWarning)]


def _flip(path, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for i in rng.choice(np.arange(len(data) // 4, len(data)), size=count, replace=False):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_blob_is_compiled_again(artifacts, tmp_path):
    cache = tmp_path / "cache"
    fresh, warned = _labels(artifacts, model_cache=False, model_cache_dir=tmp_path / "none")
    assert not warned
    first, warned = _labels(artifacts, model_cache_dir=cache)
    assert not warned
    np.testing.assert_array_equal(first, fresh)
    blobs = sorted(cache.glob("*.blob"))
    assert len(blobs) >= 3  # text encoder, image encoder, the decoder's graphs
    before = {b.name: b.read_bytes() for b in blobs}
    for blob in blobs:
        _flip(blob)
    again, warned = _labels(artifacts, model_cache_dir=cache)
    np.testing.assert_array_equal(again, fresh)
    assert len(warned) == len(blobs)
    assert all("\n" not in w and "compiling the model again" in w for w in warned)
    # replaced by good entries, read back without a warning
    assert {b.name for b in cache.glob("*.blob")} == set(before)
    last, warned = _labels(artifacts, model_cache_dir=cache)
    assert not warned
    np.testing.assert_array_equal(last, fresh)


def test_truncated_and_oversized_blobs_are_compiled_again(artifacts, tmp_path):
    cache = tmp_path / "cache"
    want, _ = _labels(artifacts, model_cache_dir=cache)
    blobs = sorted(cache.glob("*.blob"))
    blobs[0].write_bytes(blobs[0].read_bytes()[:100])
    with open(blobs[1], "ab") as f:
        f.truncate(blobs[1].stat().st_size + (1 << 30))  # sparse: refused by size before it is read
    got, warned = _labels(artifacts, model_cache_dir=cache)
    np.testing.assert_array_equal(got, want)
    assert len(warned) == 2


def test_entries_are_keyed_by_what_was_compiled(artifacts, tmp_path):
    """Another config (threads) is another entry, never this one's blob."""
    cache = tmp_path / "cache"
    _labels(artifacts, model_cache_dir=cache)
    one = {b.name for b in cache.glob("*.blob")}
    _labels(artifacts, model_cache_dir=cache, threads=1)
    both = {b.name for b in cache.glob("*.blob")}
    assert one < both and len(both) == 2 * len(one)
