"""int8 artifacts (``escnet-export quantize``) in the C++ runtime, through the C API: the manifest's
precision read by both runtimes, labels and scores equal to the Python runtime's ov-cpu on the same
folder, and bf16 on int8 refused in one line by both (docs/known-issues.md)."""

import ctypes

import numpy as np
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.errors import BackendError
from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary
from support.artifacts import tiny_baked, tiny_int8
from test_cpp_c_api import BAD_INPUT, OK, Options, _create, _segment
from test_cpp_c_api import lib as lib  # noqa: F401 (the fixture)

pytest.importorskip("openvino")
pytest.importorskip("nncf")
NAMES = ["sky", "grass", "a red car", "wall", "person"]
SIZES = [(96, 128), (61, 47), (200, 90)]


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    folder, _, _ = tiny_int8(tmp_path_factory)
    seg = Segmenter(folder, backend="ov-cpu", disk_cache=False, model_cache=False)
    vocab = write_vocabulary(tmp_path_factory.mktemp("int8-vocab") / "v.escvocab", vocabulary_of(seg, NAMES))
    return folder, seg.set_vocabulary(NAMES), vocab


def _weights(lib, folder) -> str:
    lib.escnet_segmenter_weights_precision.restype = ctypes.c_char_p
    lib.escnet_segmenter_weights_precision.argtypes = [ctypes.c_void_p]
    handle = _create(lib, folder)
    try:
        return lib.escnet_segmenter_weights_precision(handle).decode()
    finally:
        lib.escnet_segmenter_destroy(handle)


def test_cpp_reads_the_manifests_precision(lib, int8, tmp_path_factory):  # noqa: F811
    folder, python, _ = int8
    baked, artifacts, _ = tiny_baked(tmp_path_factory)
    assert python.manifest.precision == "int8"
    assert [_weights(lib, f) for f in (folder, artifacts, baked)] == ["int8", "fp32", ""]
    lib.escnet_segmenter_weights_precision.restype = ctypes.c_void_p
    assert lib.escnet_segmenter_weights_precision(None) is None


@pytest.mark.parametrize("chunk", [2, 0])  # the decoder's steps over three chunks; the whole decoder
def test_cpp_int8_equals_the_python_runtimes_ov_cpu(lib, int8, chunk):  # noqa: F811
    """int8 rounding turns a float difference of one ulp into a step: equal results need the same
    graphs, compiled the same way (the steps and the whole decoder are quantised apart)."""
    folder, _, vocab = int8
    python = Segmenter(folder, backend="ov-cpu", disk_cache=False, model_cache=False, class_chunk=chunk or None)
    python.set_vocabulary(NAMES)
    handle = _create(lib, folder, chunk=chunk)
    try:
        assert lib.escnet_segmenter_set_vocabulary(handle, str(vocab).encode()) == OK, lib.escnet_last_error()
        for i, (h, w) in enumerate(SIZES):
            image = np.random.default_rng(10 + i).integers(0, 256, (h, w, 3), dtype=np.uint8)
            labels, scores = _segment(lib, handle, image, scores=True)
            want = python.segment(image, return_scores=True)
            assert np.mean(labels == want.labels) >= 0.999, (h, w)
            assert float(np.abs(scores - want.scores).max()) <= 1e-4, (h, w)
    finally:
        lib.escnet_segmenter_destroy(handle)


def test_bf16_on_int8_is_refused_in_one_line_by_both_runtimes(lib, int8):  # noqa: F811
    folder, _, _ = int8
    options = Options()
    lib.escnet_options_init(ctypes.byref(options))
    options.precision = b"bf16"
    handle = ctypes.c_void_p()
    status = lib.escnet_segmenter_create(str(folder).encode(), ctypes.byref(options), ctypes.byref(handle))
    error = lib.escnet_last_error().decode()
    assert status == BAD_INPUT and not handle.value and "\n" not in error
    assert error.startswith("precision bf16 on int8 artifacts"), error
    with pytest.raises(BackendError, match="ov-cpu-bf16 on int8 artifacts") as e:
        Segmenter(folder, backend="ov-cpu-bf16", disk_cache=False)
    assert "\n" not in str(e.value)
