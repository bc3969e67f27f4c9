"""The C++ runtime's C API (``runtime/cpp/include/escnet/escnet.h``) from Python, through ctypes.

What the bench's C++ contenders call: ``libescnet`` opened as a user of another language opens
it, every call checked against its status and the calling thread's ``escnet_last_error()``.
ctypes releases the GIL for each foreign call, so a timed call is the library's own time plus a
few microseconds of argument conversion. Images are (H, W, 3) uint8 RGB, labels (H, W) int32.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

OK = 0
STATUS_NAMES = {1: "invalid argument", 2: "bad input", 3: "out of memory", 4: "internal error"}
PRECISIONS = ("f32", "bf16")
LIBRARY_NAME = "libescnet.so"


class CppError(RuntimeError):
    """A C API call failed; the message is the library's one line."""


class _Options(ctypes.Structure):
    _fields_ = [("device", ctypes.c_char_p), ("precision", ctypes.c_char_p), ("class_chunk", ctypes.c_int),
                ("threads", ctypes.c_int)]  # fmt: skip


class _Image(ctypes.Structure):
    _fields_ = [("rgb", ctypes.c_void_p), ("height", ctypes.c_int), ("width", ctypes.c_int),
                ("stride", ctypes.c_size_t)]  # fmt: skip


def _declare(lib: ctypes.CDLL) -> None:
    """Argument and result types of every function used here (an old library lacking one fails here)."""
    handle, status, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    names = ctypes.POINTER(ctypes.c_char_p)
    lib.escnet_version.restype = ctypes.c_char_p
    lib.escnet_last_error.restype = ctypes.c_char_p
    lib.escnet_options_init.argtypes = [ctypes.POINTER(_Options)]
    lib.escnet_options_init.restype = None
    signatures = {
        "create": [ctypes.c_char_p, ctypes.POINTER(_Options), ctypes.POINTER(handle)],
        "set_classes": [handle, names, size],
        "set_classes_cached": [handle, names, size, ctypes.c_char_p],
        "class_count": [handle, ctypes.POINTER(size)],
        "segment": [handle, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, size, ctypes.c_void_p],
        "segment_batch": [handle, ctypes.POINTER(_Image), size, ctypes.POINTER(ctypes.c_void_p)],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, f"escnet_segmenter_{name}")
        fn.argtypes, fn.restype = argtypes, status
    lib.escnet_segmenter_destroy.argtypes, lib.escnet_segmenter_destroy.restype = [handle], None
    lib.escnet_segmenter_weights_precision.argtypes = [handle]
    lib.escnet_segmenter_weights_precision.restype = ctypes.c_char_p


def load_library(path: Path) -> ctypes.CDLL:
    """Open ``libescnet`` at ``path``; :class:`CppError` in one line when it cannot be opened."""
    try:
        lib = ctypes.CDLL(str(path))
        _declare(lib)
    except (OSError, AttributeError) as e:
        raise CppError(f"{path}: cannot be opened as the C++ runtime's library ({e})") from None
    return lib


def _names(names: list[str]) -> ctypes.Array:
    return (ctypes.c_char_p * len(names))(*(n.encode("utf-8") for n in names))


class CppSegmenter:
    """One ``escnet_segmenter`` on an artifacts folder: ``precision`` "f32" or "bf16" (the OpenVINO
    inference hint), ``class_chunk`` classes per decoder step (0: the manifest's)."""

    def __init__(self, lib: ctypes.CDLL, folder: Path, precision: str = "f32", class_chunk: int = 0) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.lib = lib
        options = _Options()
        lib.escnet_options_init(ctypes.byref(options))
        options.precision, options.class_chunk = precision.encode(), class_chunk
        self._handle = ctypes.c_void_p()
        created = lib.escnet_segmenter_create(str(folder).encode(), ctypes.byref(options), ctypes.byref(self._handle))
        self._check(created)

    def _check(self, status: int) -> None:
        if status != OK:
            error = (self.lib.escnet_last_error() or b"").decode("utf-8", "replace")
            raise CppError(error or f"the C API returned {STATUS_NAMES.get(status, status)}")

    @property
    def version(self) -> str:
        return self.lib.escnet_version().decode()

    @property
    def weights_precision(self) -> str:
        """The manifest's ``precision`` ("fp32" or "int8")."""
        return (self.lib.escnet_segmenter_weights_precision(self._handle) or b"").decode()

    @property
    def class_count(self) -> int:
        count = ctypes.c_size_t()
        self._check(self.lib.escnet_segmenter_class_count(self._handle, ctypes.byref(count)))
        return count.value

    def set_classes(self, names: list[str], cache_file: Path | None = None) -> None:
        """Encode ``names`` with the C++ tokenizer and text encoder (through ``cache_file``, a
        vocabulary file, when given: read when it holds these names, else written)."""
        array = _names(names)
        if cache_file is None:
            self._check(self.lib.escnet_segmenter_set_classes(self._handle, array, len(names)))
        else:
            cache = str(cache_file).encode()
            self._check(self.lib.escnet_segmenter_set_classes_cached(self._handle, array, len(names), cache))

    def segment(self, images: np.ndarray) -> np.ndarray:
        """images (B, H, W, 3) uint8 -> labels (B, H, W) int32 (one call for B = 1, a batch call above)."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        b, h, w, _ = images.shape
        labels = np.empty((b, h, w), np.int32)
        if b == 1:
            pixels, out = images.ctypes.data, labels.ctypes.data
            self._check(self.lib.escnet_segmenter_segment(self._handle, pixels, h, w, w * 3, out))
            return labels
        batch = (_Image * b)(*(_Image(images[i].ctypes.data, h, w, w * 3) for i in range(b)))
        outs = (ctypes.c_void_p * b)(*(labels[i].ctypes.data for i in range(b)))
        self._check(self.lib.escnet_segmenter_segment_batch(self._handle, batch, b, outs))
        return labels

    def close(self) -> None:
        if self._handle:
            self.lib.escnet_segmenter_destroy(self._handle)
            self._handle = ctypes.c_void_p()
