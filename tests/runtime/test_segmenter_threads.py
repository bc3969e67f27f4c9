"""The Segmenter's thread-safety contract on ort-cpu: ``segment`` from several threads while another
thread swaps vocabularies; every result pairs its labels with its own vocabulary's names."""

import threading
import time

import numpy as np
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.shared_lock import SharedLock
from support.artifacts import tiny_artifacts

SMALL = ("cat", "sky")
LARGE = ("wall", "grass", "tree", "road", "person", "car", "water")  # other names, another T
ROUNDS = 6


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)


def test_segment_and_set_vocabulary_from_threads(artifacts):
    seg = Segmenter(artifacts, disk_cache=False)
    images = [_image(s) for s in range(3)]
    reference = {}
    for names in (SMALL, LARGE):  # single-threaded labels per vocabulary (also fills the memory cache)
        seg.set_vocabulary(list(names))
        reference[names] = [seg.segment(img).labels for img in images]
    failures: list[str] = []
    done = threading.Event()

    def segment_loop(k: int) -> None:
        for i in range(ROUNDS):
            result = seg.segment(images[(k + i) % len(images)])
            names = result.class_names
            if names not in reference:
                failures.append(f"unknown vocabulary {names}")
            elif not np.array_equal(result.labels, reference[names][(k + i) % len(images)]):
                failures.append(f"labels of another vocabulary paired with {names}")

    def swap_loop() -> None:
        i = 0
        while not done.is_set():
            seg.set_vocabulary(list((SMALL, LARGE)[i % 2]))
            i += 1
            time.sleep(0.005)  # a real caller does other work between swaps

    swapper = threading.Thread(target=swap_loop)
    workers = [threading.Thread(target=segment_loop, args=(k,)) for k in range(3)]
    swapper.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    done.set()
    swapper.join(timeout=60)
    assert not swapper.is_alive() and not any(w.is_alive() for w in workers)
    assert failures == []


def test_shared_lock_lets_readers_share_and_a_writer_wait():
    lock, order = SharedLock(), []
    inside = threading.Barrier(2)

    def reader(name: str) -> None:
        with lock.shared():
            inside.wait(timeout=10)  # both readers are inside together
            order.append(name)

    readers = [threading.Thread(target=reader, args=(n,)) for n in ("r1", "r2")]
    for r in readers:
        r.start()
    for r in readers:
        r.join(timeout=10)
    with lock.exclusive():
        order.append("w")
    assert sorted(order[:2]) == ["r1", "r2"] and order[2] == "w"
