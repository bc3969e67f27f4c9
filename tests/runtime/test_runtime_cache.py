"""The text-embedding cache: content addressing, hit/miss, bit-identity with a fresh encode, atomic files."""

import numpy as np
import pytest
from escnet_runtime import ModelIdentity, Segmenter, TextEmbeddingCache, precompute_vocabulary
from escnet_runtime.cache import CacheWriteWarning
from support.artifacts import tiny_artifacts

NAMES = ["cat", "grass", "sky", "a dog on a skateboard", "tree"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def test_keys_depend_on_every_part():
    base = ModelIdentity("a" * 64, "b" * 64, 77, "fp32")
    variants = [
        ModelIdentity("c" * 64, "b" * 64, 77, "fp32"),
        ModelIdentity("a" * 64, "c" * 64, 77, "fp32"),
        ModelIdentity("a" * 64, "b" * 64, 76, "fp32"),
        ModelIdentity("a" * 64, "b" * 64, 77, "fp16"),
    ]
    key = base.key("a photo of a {}.", "cat")
    assert all(v.key("a photo of a {}.", "cat") != key for v in variants)
    assert base.key("a {}.", "cat") != key and base.key("a photo of a {}.", "Cat") != key
    assert base.key("a photo of a {}.", "cat") == key


def test_disk_entries_round_trip_exactly_and_atomically(tmp_path):
    cache = TextEmbeddingCache(tmp_path, dim=4)
    value = np.array([1e-38, -0.0, np.pi, 1 / 3], dtype=np.float32)
    cache.put("ab" * 32, value)
    fresh = TextEmbeddingCache(tmp_path, dim=4)
    got = fresh.get("ab" * 32)
    assert got.tobytes() == value.tobytes() and fresh.stats.hits == 1 and fresh.stats.disk_reads == 1
    assert [p.suffix for p in tmp_path.rglob("*") if p.is_file()] == [".npy"]  # no temporary left behind
    assert fresh.get("cd" * 32) is None and fresh.stats.misses == 1


def test_corrupt_or_foreign_entries_are_misses(tmp_path):
    cache = TextEmbeddingCache(tmp_path, dim=4)
    cache.put("ab" * 32, np.ones(4, np.float32))
    path = next(tmp_path.rglob("*.npy"))
    path.write_bytes(b"garbage")
    assert TextEmbeddingCache(tmp_path, dim=4).get("ab" * 32) is None
    np.save(path, np.ones(5, np.float32))
    assert TextEmbeddingCache(tmp_path, dim=4).get("ab" * 32) is None


def test_unwritable_cache_warns_and_keeps_working(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = TextEmbeddingCache(blocker / "cache", dim=2)
    with pytest.warns(CacheWriteWarning, match="not writable"):
        cache.put("ab" * 32, np.ones(2, np.float32))
    cache.put("cd" * 32, np.zeros(2, np.float32))  # warned once, then memory only
    assert cache.get("ab" * 32).tolist() == [1, 1] and cache.directory is None


def test_cached_vocabulary_is_bit_identical_to_a_fresh_encode(artifacts, tmp_path):
    fresh = Segmenter(artifacts, disk_cache=False).encode_vocabulary(NAMES)
    cold = Segmenter(artifacts, cache_dir=tmp_path)
    first = cold.encode_vocabulary(NAMES)
    assert cold.cache.stats.misses == len(NAMES) and cold.cache.stats.disk_writes == len(NAMES)
    warm = Segmenter(artifacts, cache_dir=tmp_path)  # a new process would see the same: disk only
    second = warm.encode_vocabulary(NAMES)
    assert warm.cache.stats.hits == len(NAMES) and warm.cache.stats.misses == 0
    assert first.tobytes() == fresh.tobytes() == second.tobytes()
    # a new vocabulary only encodes its new names; order and subsets come from the same entries
    mixed = warm.encode_vocabulary(["tree", "cat", "car"])
    assert warm.cache.stats.misses == 1
    assert mixed[0].tobytes() == fresh[4].tobytes() and mixed[1].tobytes() == fresh[0].tobytes()
    alone = Segmenter(artifacts, disk_cache=False).encode_vocabulary(["car"])
    assert mixed[2].tobytes() == alone[0].tobytes()


def test_warm_cache_gives_identical_segmentation(artifacts, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    a = Segmenter(artifacts, cache_dir=tmp_path).set_vocabulary(NAMES).segment(image, return_scores=True)
    b = Segmenter(artifacts, cache_dir=tmp_path).set_vocabulary(NAMES).segment(image, return_scores=True)
    assert (a.labels == b.labels).all() and a.scores.tobytes() == b.scores.tobytes()


def test_precomputed_vocabulary_is_read_not_encoded(artifacts, tmp_path):
    assert precompute_vocabulary(artifacts, NAMES, cache_dir=tmp_path) == len(NAMES)
    assert precompute_vocabulary(artifacts, NAMES, cache_dir=tmp_path) == 0
    seg = Segmenter(artifacts, cache_dir=tmp_path).set_vocabulary(NAMES)
    assert seg.cache.stats.hits == len(NAMES) and seg.cache.stats.misses == 0
    assert "text_encoder" not in seg.backend._sessions  # the graph never ran
