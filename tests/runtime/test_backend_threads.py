"""Backends called from several threads at once: each call gets its own inputs' results.

The contract (``escnet_runtime.backends.base``): ``Backend.run`` may be called from several
threads at once. Eight threads segment eight different images through one Segmenter, the
class axis chunked (every decoder step runs several times per image), and every result equals
the single-thread run's. OpenVINO's infer requests come from a pool per compiled model, made
once and reused; THROUGHPUT sizes the pool from OpenVINO's optimal number of requests."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from escnet_runtime import BackendError, Segmenter
from support.artifacts import tiny_artifacts

CLASSES = ["cat", "grass", "sky", "tree", "person", "road", "a red car"]
THREADS = 8


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.integers(0, 256, (40 + 3 * i, 60 - 2 * i, 3), dtype=np.uint8) for i in range(THREADS)]


def _options(backend: str, tmp_path) -> dict:
    if backend.startswith("ov-"):
        pytest.importorskip("openvino")
        return {"model_cache_dir": tmp_path / "ov"}
    return {}


def _together(seg: Segmenter, images: list[np.ndarray]) -> list:
    """Every image segmented on its own thread, all released at once."""
    start = threading.Barrier(len(images))

    def one(image):
        start.wait()
        return seg.segment(image, return_scores=True)

    with ThreadPoolExecutor(len(images)) as pool:
        return list(pool.map(one, images))


@pytest.mark.parametrize("backend", ["ort-cpu", "ov-cpu"])
def test_eight_threads_give_the_single_thread_results(artifacts, tmp_path, backend):
    images = _images()
    with Segmenter(artifacts, backend=backend, disk_cache=False, class_chunk=3, **_options(backend, tmp_path)) as seg:
        seg.set_vocabulary(CLASSES)
        alone = [seg.segment(image, return_scores=True) for image in images]
        for _ in range(2):  # twice: the second round reuses what the first made
            together = _together(seg, images)
            for want, got in zip(alone, together, strict=True):
                np.testing.assert_array_equal(got.labels, want.labels)
                np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-5)
        if backend.startswith("ov-"):
            pools = seg.backend._pools
            assert pools and all(1 <= p.created <= p.size for p in pools.values())
            assert seg.backend.options.performance_hint == "LATENCY"


def test_ov_requests_are_made_once_and_reused(artifacts, tmp_path):
    pytest.importorskip("openvino")
    with Segmenter(artifacts, backend="ov-cpu", disk_cache=False, model_cache_dir=tmp_path / "ov") as seg:
        seg.set_vocabulary(CLASSES)
        image = _images()[0]
        seg.segment(image)
        made = {g: p.created for g, p in seg.backend._pools.items()}
        ids = {g: {id(r) for r in p._idle} for g, p in seg.backend._pools.items()}
        for _ in range(3):
            seg.segment(image)
        assert {g: p.created for g, p in seg.backend._pools.items()} == made
        assert {g: {id(r) for r in p._idle} for g, p in seg.backend._pools.items()} == ids


def test_ov_throughput_hint_opens_and_gives_the_same_labels(artifacts, tmp_path):
    pytest.importorskip("openvino")
    images = _images()[:4]
    kw = dict(backend="ov-cpu", disk_cache=False, model_cache_dir=tmp_path / "ov")
    with Segmenter(artifacts, **kw) as latency:
        want = [latency.set_vocabulary(CLASSES).segment(image).labels for image in images]
    with Segmenter(artifacts, performance_hint="THROUGHPUT", **kw) as seg:
        seg.set_vocabulary(CLASSES)
        got = _together(seg, images)
        for pool in seg.backend._pools.values():
            optimal = int(pool.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            assert pool.size == max(optimal, 1) and pool.created <= pool.size
            assert "THROUGHPUT" in str(pool.compiled.get_property("PERFORMANCE_HINT"))
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(g.labels, w)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("performance_hint", "FAST", "performance_hint 'FAST'"),
        ("num_streams", 0, "num_streams 0"),
        ("threads", "x", "threads 'x'"),
    ],
)
def test_ov_bad_options_are_one_line(artifacts, tmp_path, option, value, message):
    pytest.importorskip("openvino")
    from escnet_runtime import load_manifest
    from escnet_runtime.backends.ov import OvBackend

    with pytest.raises(BackendError, match=message) as caught:
        OvBackend(artifacts, load_manifest(artifacts), model_cache_dir=tmp_path / "ov", **{option: value})
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "ov").exists()  # refused before anything was made
