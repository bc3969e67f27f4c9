"""The C API (escnet.h) driven from another language, Python's ctypes, against the Python runtime:
labels (>= 99.9 % equal) and per-class scores (max-abs <= 1e-4) on several sizes; statuses and
one-line, thread-local errors; caller-owned buffers; the plain-C example built with the library."""

import ctypes
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary
from support.artifacts import BAKED_NAMES, tiny_baked

OK, INVALID_ARGUMENT, BAD_INPUT = 0, 1, 2
NAMES = ["sky", "grass", "a red car parked on the street", "wall", "person", "tree", "road"]
SIZES = [(50, 83), (128, 128), (97, 31)]


class Options(ctypes.Structure):
    _fields_ = [("device", ctypes.c_char_p), ("precision", ctypes.c_char_p), ("class_chunk", ctypes.c_int),
                ("threads", ctypes.c_int)]  # fmt: skip


@pytest.fixture(scope="module")
def lib(cpp_build) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(cpp_build / "libescnet.so"))
    handle, status = ctypes.c_void_p, ctypes.c_int
    lib.escnet_version.restype = ctypes.c_char_p
    lib.escnet_last_error.restype = ctypes.c_char_p
    lib.escnet_options_init.argtypes = [ctypes.POINTER(Options)]
    lib.escnet_segmenter_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(Options), ctypes.POINTER(handle)]
    lib.escnet_segmenter_destroy.argtypes = [handle]
    lib.escnet_segmenter_set_vocabulary.argtypes = [handle, ctypes.c_char_p]
    image = [handle, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p]
    lib.escnet_segmenter_segment.argtypes = image
    lib.escnet_segmenter_segment_scores.argtypes = [*image, ctypes.c_void_p]
    lib.escnet_segmenter_class_count.argtypes = [handle, ctypes.POINTER(ctypes.c_size_t)]
    lib.escnet_segmenter_class_name.argtypes = [handle, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                                ctypes.POINTER(ctypes.c_size_t)]  # fmt: skip
    lib.escnet_segmenter_class_colour.argtypes = [handle, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint8 * 3)]
    for name in dir(lib):
        if name.startswith("escnet_segmenter_") and name != "escnet_segmenter_destroy":
            getattr(lib, name).restype = status
    return lib


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    baked, artifacts, _ = tiny_baked(tmp_path_factory)
    seg = Segmenter(artifacts, disk_cache=False, class_chunk=3).set_vocabulary(NAMES)
    vocab = write_vocabulary(tmp_path_factory.mktemp("capi") / "v.escvocab", vocabulary_of(seg, NAMES))
    return {"baked": baked, "artifacts": artifacts, "vocabulary": vocab, "python": seg}


def _create(lib, folder: Path, chunk: int = 0) -> ctypes.c_void_p:
    options = Options()
    lib.escnet_options_init(ctypes.byref(options))
    options.class_chunk = chunk
    handle = ctypes.c_void_p()
    status = lib.escnet_segmenter_create(str(folder).encode(), ctypes.byref(options), ctypes.byref(handle))
    assert status == OK, lib.escnet_last_error()
    return handle


def _segment(lib, handle, array: np.ndarray, scores: bool = False):
    h, w, _ = array.shape
    labels = np.zeros((h, w), np.int32)
    count = ctypes.c_size_t()
    assert lib.escnet_segmenter_class_count(handle, ctypes.byref(count)) == OK
    out = np.zeros((count.value, h, w), np.float32) if scores else None
    args = [handle, array.ctypes.data, h, w, w * 3, labels.ctypes.data]
    status = (
        lib.escnet_segmenter_segment_scores(*args, out.ctypes.data) if scores else lib.escnet_segmenter_segment(*args)
    )
    assert status == OK, lib.escnet_last_error()
    return labels, out


def test_c_api_labels_and_scores_match_the_python_runtime(lib, folders):
    handle = _create(lib, folders["artifacts"], chunk=3)
    try:
        assert lib.escnet_segmenter_set_vocabulary(handle, str(folders["vocabulary"]).encode()) == OK
        for i, (h, w) in enumerate(SIZES):
            array = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
            labels, scores = _segment(lib, handle, array, scores=True)
            want = folders["python"].segment(array, return_scores=True)
            assert np.mean(labels == want.labels) >= 0.999, (h, w)
            assert float(np.abs(scores - want.scores).max()) <= 1e-4, (h, w)
            assert np.array_equal(_segment(lib, handle, array)[0], labels)
        name, needed = ctypes.create_string_buffer(64), ctypes.c_size_t()
        assert lib.escnet_segmenter_class_name(handle, 2, name, 64, ctypes.byref(needed)) == OK
        assert name.value.decode() == NAMES[2] and needed.value == len(NAMES[2]) + 1
        assert lib.escnet_segmenter_class_name(handle, 2, name, 5, None) == INVALID_ARGUMENT  # too small
        assert b"takes" in lib.escnet_last_error()
        rgb = (ctypes.c_uint8 * 3)()
        assert lib.escnet_segmenter_class_colour(handle, 1, ctypes.byref(rgb)) == OK
    finally:
        lib.escnet_segmenter_destroy(handle)


def test_c_api_runs_a_baked_folder_from_threads(lib, folders):
    handle = _create(lib, folders["baked"])
    seg = Segmenter(folders["artifacts"], disk_cache=False).set_vocabulary(list(BAKED_NAMES))
    array = np.random.default_rng(7).integers(0, 256, (61, 47, 3), dtype=np.uint8)
    results: list = [None] * 4

    def work(i: int) -> None:
        results[i] = _segment(lib, handle, array)[0]

    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert np.mean(results[0] == seg.segment(array).labels) >= 0.999
        assert all(np.array_equal(r, results[0]) for r in results)
        h, w, _ = array.shape
        labels, scores = np.zeros((h, w), np.int32), np.zeros((5, h, w), np.float32)
        status = lib.escnet_segmenter_segment_scores(handle, array.ctypes.data, h, w, w * 3, labels.ctypes.data,
                                                     scores.ctypes.data)  # fmt: skip
        assert status == INVALID_ARGUMENT and b"baked" in lib.escnet_last_error()
    finally:
        lib.escnet_segmenter_destroy(handle)


def test_c_api_errors_are_statuses_with_one_thread_local_line(lib, folders, tmp_path):
    handle = ctypes.c_void_p(1)
    assert lib.escnet_segmenter_create(str(tmp_path / "none").encode(), None, ctypes.byref(handle)) == BAD_INPUT
    assert handle.value is None
    message = lib.escnet_last_error().decode()
    assert "no such folder" in message and "\n" not in message
    seen = []
    other = threading.Thread(target=lambda: seen.append(lib.escnet_last_error()))
    other.start()
    other.join()
    assert seen == [b""]  # another thread's last error is its own
    assert lib.escnet_segmenter_create(None, None, ctypes.byref(handle)) == INVALID_ARGUMENT
    assert b"folder is NULL" in lib.escnet_last_error()
    seg = _create(lib, folders["artifacts"])
    try:
        labels = np.zeros((4, 4), np.int32)
        image = np.zeros((4, 4, 3), np.uint8)
        assert lib.escnet_segmenter_segment(seg, image.ctypes.data, 4, 4, 12, labels.ctypes.data) == BAD_INPUT
        assert b"no vocabulary" in lib.escnet_last_error()
        assert lib.escnet_segmenter_set_vocabulary(seg, str(tmp_path / "x.escvocab").encode()) == BAD_INPUT
        assert lib.escnet_segmenter_set_vocabulary(seg, str(folders["vocabulary"]).encode()) == OK
        assert lib.escnet_last_error() == b""
        assert lib.escnet_segmenter_segment(seg, image.ctypes.data, 4, 4, 5, labels.ctypes.data) == BAD_INPUT
        assert b"stride" in lib.escnet_last_error()
        assert lib.escnet_segmenter_segment(seg, None, 4, 4, 12, labels.ctypes.data) == BAD_INPUT
        assert lib.escnet_segmenter_segment(seg, image.ctypes.data, 4, 4, 12, None) == INVALID_ARGUMENT
    finally:
        lib.escnet_segmenter_destroy(seg)
    lib.escnet_segmenter_destroy(None)
    assert lib.escnet_version() == b"0.1.0"


def test_the_c_example_runs(cpp_build, folders):
    proc = subprocess.run([str(cpp_build / "escnet-example-c"), str(folders["baked"])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "escnet 0.1.0"
    counts = dict(line.rsplit(": ", 1) for line in lines[1:])
    assert list(counts) == list(BAKED_NAMES) and sum(map(int, counts.values())) == 48 * 64
    proc = subprocess.run([str(cpp_build / "escnet-example-c"), "/nonexistent"], capture_output=True, text=True)
    assert proc.returncode == 2 and "no such folder" in proc.stderr


def test_c_api_sliding_window_matches_the_python_runtime(lib, folders):
    lib.escnet_segmenter_segment_sliding.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                                     ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
    lib.escnet_segmenter_segment_sliding.restype = ctypes.c_int
    handle = _create(lib, folders["artifacts"], chunk=3)
    try:
        assert lib.escnet_segmenter_set_vocabulary(handle, str(folders["vocabulary"]).encode()) == OK
        for i, (h, w) in enumerate([(70, 100), (150, 90)]):
            array = np.random.default_rng(20 + i).integers(0, 256, (h, w, 3), dtype=np.uint8)
            labels, scores = np.zeros((h, w), np.int32), np.zeros((len(NAMES), h, w), np.float32)
            status = lib.escnet_segmenter_segment_sliding(handle, array.ctypes.data, h, w, w * 3, labels.ctypes.data,
                                                          scores.ctypes.data)  # fmt: skip
            assert status == OK, lib.escnet_last_error()
            want = folders["python"].segment(array, sliding_window=True, return_scores=True)
            assert np.mean(labels == want.labels) >= 0.999, (h, w)
            assert float(np.abs(scores - want.scores).max()) <= 1e-4, (h, w)
    finally:
        lib.escnet_segmenter_destroy(handle)
    baked = _create(lib, folders["baked"])
    try:
        labels = np.zeros((8, 8), np.int32)
        image = np.zeros((8, 8, 3), np.uint8)
        status = lib.escnet_segmenter_segment_sliding(baked, image.ctypes.data, 8, 8, 24, labels.ctypes.data, None)
        assert status == INVALID_ARGUMENT and b"sliding window" in lib.escnet_last_error()
    finally:
        lib.escnet_segmenter_destroy(baked)


class Image(ctypes.Structure):
    _fields_ = [
        ("rgb", ctypes.c_void_p),
        ("height", ctypes.c_int),
        ("width", ctypes.c_int),
        ("stride", ctypes.c_size_t),
    ]


def test_c_api_batch_input(lib, folders):
    lib.escnet_segmenter_segment_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(Image), ctypes.c_size_t,
                                                   ctypes.POINTER(ctypes.c_void_p)]  # fmt: skip
    lib.escnet_segmenter_segment_batch.restype = ctypes.c_int
    handle = _create(lib, folders["artifacts"], chunk=3)
    try:
        assert lib.escnet_segmenter_set_vocabulary(handle, str(folders["vocabulary"]).encode()) == OK
        arrays = [
            np.random.default_rng(30 + i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i, (h, w) in enumerate(SIZES)
        ]
        images = (Image * len(arrays))(*[Image(a.ctypes.data, a.shape[0], a.shape[1], a.shape[1] * 3) for a in arrays])
        labels = [np.zeros(a.shape[:2], np.int32) for a in arrays]
        outs = (ctypes.c_void_p * len(arrays))(*[lab.ctypes.data for lab in labels])
        assert lib.escnet_segmenter_segment_batch(handle, images, len(arrays), outs) == OK, lib.escnet_last_error()
        for array, got in zip(arrays, labels, strict=True):
            assert np.mean(got == folders["python"].segment(array).labels) >= 0.999
        images[1].stride = 1  # one bad image: refused before any is segmented
        labels[0][:] = -7
        assert lib.escnet_segmenter_segment_batch(handle, images, len(arrays), outs) == BAD_INPUT
        assert b"stride" in lib.escnet_last_error() and (labels[0] == -7).all()
    finally:
        lib.escnet_segmenter_destroy(handle)
