"""Contenders that run the C++ runtime (``libescnet``) through its C API, in the bench's own process.

What a C, C++, Rust or Go user of the library gets: ``escnet_segmenter_create`` on the artifacts
folder, class names encoded by the C++ tokenizer and text encoder, ``escnet_segmenter_segment``
from uint8 pixels to labels. The C API has no per-graph calls, so these contenders are timed end
to end and on the text path only; their labels are judged against PyTorch's like every other
contender's. The library is the one built from ``runtime/cpp`` (docs/cpp.md), found at
``--cpp-lib`` (default ``build/cpp/libescnet.so`` under the working folder).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from escnet_runtime import contract as C
from escnet_runtime.manifest import load_manifest

from escnet_bench.contenders.base import Cache, Contender, ContenderSpec, ContenderUnavailable, VocabularyRun
from escnet_bench.contenders.runtime import int8_folder
from escnet_bench.cpp_library import CppError, CppSegmenter, load_library

CPP_SPECS: dict[str, ContenderSpec] = {
    s.name: s
    for s in (
        ContenderSpec("cpp-cpu", "cpp", "cpu", "fp32", "C++ runtime (libescnet, C API), OpenVINO CPU, f32"),
        ContenderSpec("cpp-cpu-bf16", "cpp", "cpu", "bf16", "C++ runtime (libescnet, C API), OpenVINO CPU, bf16"),
        ContenderSpec("cpp-cpu-int8", "cpp", "cpu", "int8", "C++ runtime (libescnet, C API), int8 artifacts"),
    )
}
_HINTS = {"cpp-cpu": "f32", "cpp-cpu-bf16": "bf16", "cpp-cpu-int8": "f32"}  # int8: QDQ in int8, the rest f32
DEFAULT_LIBRARY = Path("build") / "cpp" / "libescnet.so"
BUILD_HINT = "build runtime/cpp as docs/cpp.md says, then pass --cpp-lib build/cpp/libescnet.so"


def library_path(given: Path | None) -> Path:
    """The library the C++ contenders open: ``--cpp-lib``, else the docs' build location."""
    return Path(given) if given is not None else DEFAULT_LIBRARY


class CppContender(Contender):
    """A C++ ``escnet_segmenter`` on the artifacts folder (ARTIFACTS-int8 for ``cpp-cpu-int8``).

    ``class_chunk``: classes per decoder step (None: the manifest's; the details report the one run)."""

    separate_graphs = False

    def __init__(self, name: str, artifacts: Path, library: Path | None, class_chunk: int | None = None) -> None:
        path = library_path(library)
        if importlib.util.find_spec("openvino") is None:
            raise ContenderUnavailable("OpenVINO is not installed (the C++ runtime links the openvino wheel's library)")
        if not path.is_file():
            raise ContenderUnavailable(f"no C++ runtime library at {path}; {BUILD_HINT}")
        folder = int8_folder(artifacts) if name == "cpp-cpu-int8" else Path(artifacts)
        if name == "cpp-cpu-int8" and not (folder / C.MANIFEST_FILE).is_file():
            raise ContenderUnavailable(f"no int8 artifacts at {folder}; write them with escnet-export quantize")
        self.spec, self.library, self.folder = CPP_SPECS[name], path.resolve(), folder
        self._tmp = Path(tempfile.mkdtemp(prefix="escnet-bench-cpp-"))
        self._files = 0
        try:
            self.seg = CppSegmenter(load_library(path), folder, _HINTS[name], class_chunk or 0)
            held = self.seg.weights_precision
            if (held == "int8") != (name == "cpp-cpu-int8"):
                raise CppError(f"{folder}: its manifest says precision {held or 'none (baked)'}, not what {name} runs")
            self.seg.set_classes(["warm-up"])
            self.seg.segment(np.zeros((1, 32, 32, 3), dtype=np.uint8))
        except CppError as e:
            self.close()
            raise ContenderUnavailable(str(e)) from None
        self.class_chunk = class_chunk or load_manifest(folder, verify=False).class_chunk  # None: all at once

    def graph_fn(self, graph: str, inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
        raise NotImplementedError(f"{self.spec.name}: the C API runs the pipeline, not {graph} alone")

    def graph_outputs(self, graph: str, raw: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.spec.name}: the C API runs the pipeline, not {graph} alone")

    def _fresh_file(self) -> Path:
        self._files += 1
        return self._tmp / f"vocabulary-{self._files}.escvocab"

    def vocabulary_fn(self, names: list[str], cache: Cache) -> VocabularyRun | None:
        """cold: ``set_classes`` (tokenizer + text encoder); warm_disk: ``set_classes_cached`` on a
        vocabulary file that holds them; no in-memory cache (None for warm)."""
        if cache == "cold":
            return VocabularyRun(lambda: self.seg.set_classes(names))
        if cache == "warm":
            return None
        file = self._fresh_file()
        self.seg.set_classes(names, cache_file=file)  # encodes and writes the file
        return VocabularyRun(lambda: self.seg.set_classes(names, cache_file=file))

    def set_vocabulary(self, names: list[str]) -> None:
        self.seg.set_classes(names)

    def segment_fn(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        staged = np.ascontiguousarray(images, dtype=np.uint8)
        return lambda: self.seg.segment(staged)

    def details(self) -> dict[str, Any]:
        import openvino

        return {
            "library": str(self.library),
            "escnet_version": self.seg.version,
            "artifacts": str(self.folder),
            "precision_hint": _HINTS[self.spec.name],
            "weights_precision": self.seg.weights_precision,
            "class_chunk": self.class_chunk,
            "openvino": openvino.__version__,
        }

    def close(self) -> None:
        if getattr(self, "seg", None) is not None:
            self.seg.close()
        self.seg = None  # type: ignore[assignment]
        shutil.rmtree(self._tmp, ignore_errors=True)
