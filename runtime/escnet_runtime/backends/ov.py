"""OpenVINO on the CPU through OpenVINO's own Python API (``ov.Core``, ``read_model``,
``compile_model``, a pool of infer requests per graph).

``ov-cpu`` sets ``INFERENCE_PRECISION_HINT`` to f32 explicitly: OpenVINO's default on a CPU with
AVX-512 bf16 is bf16. ``ov-cpu-bf16`` compiles every graph with the bf16 hint and keeps only the
f32 islands of ``precision_rule`` in f32, node by node: the decision operators and the per-pixel
score computation that feeds them (:mod:`escnet_runtime.backends.ov_islands` marks them with the
runtime attribute ``precise_0``, the key ``ov::disable_fp16_compression`` sets; the older key
``disable_fp16_compression_0`` is ignored by OpenVINO 2026.4, and was what an earlier version
of this backend set, to no effect). :meth:`OvBackend.runtime_precisions` and
:meth:`OvBackend.node_precisions` report what each compiled graph really runs in.

Thread safety: ``run`` may be called from several threads at once. Each graph is compiled once
(under a lock) and runs on a pool of infer requests (:mod:`ov_requests`), sized by OpenVINO's
``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` for the ``performance_hint``: ``"LATENCY"`` (default; one
stream, one request, callers take turns) or ``"THROUGHPUT"`` (several streams, a request each).

Graphs are read from the bytes whose sha256 the manifest lists (:func:`read_graph`) and compiled
with dynamic batch and class axes; compiled models are cached in ``model_cache_dir`` (default
``~/.cache/escnet/openvino``, ``model_cache=False`` turns it off) by :mod:`ov_cache`, whose
entries are keyed and hashed: a damaged one is compiled again, with one warning line.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from escnet_runtime.backends.base import Backend
from escnet_runtime.backends.ov_cache import CompiledModelCache, entry_key
from escnet_runtime.backends.ov_islands import mark_f32_islands, through_ir
from escnet_runtime.backends.ov_requests import RequestPool
from escnet_runtime.contract import IMAGE_ENCODER, TEXT_ENCODER, GraphSpec
from escnet_runtime.errors import BackendError
from escnet_runtime.graph_files import verified_graph
from escnet_runtime.heap import trim_heap
from escnet_runtime.manifest import Manifest
from escnet_runtime.precision_rule import ISLAND_RULE

OV_PRECISIONS = {"ov-cpu": "f32", "ov-cpu-bf16": "bf16"}
PerformanceHint = Literal["LATENCY", "THROUGHPUT"]
PERFORMANCE_HINTS: tuple[str, ...] = ("LATENCY", "THROUGHPUT")


# When compiled models hand their intermediate buffers back (``CompiledModel.release_memory``):
# OpenVINO keeps each graph's working memory between runs, and with eight graphs those add up
# (ONNX Runtime shares one arena instead). Per policy: the graphs released after every run, and
# whether a graph is released when its caller says it is done with it (:meth:`OvBackend.release`:
# the chunked decoder, after a step has run on its last chunk of classes).
#   "steps" (ov-cpu's default): the encoders after every run (each runs once per vocabulary / image,
#       before the decoder), each decoder step after its last chunk: one step's working memory at a time;
#   "encoders" (ov-cpu-bf16's default): the encoders only (every step keeps its memory). On a stream
#       of images at 150 classes: under bf16 1.43x faster than "steps" for 1.09x its peak, under f32
#       1.06x faster for 1.21x its peak (docs/openvino.md, 2026-12-04);
#   "all": every graph after every run (re-allocated for every chunk: slowest); "none".
class ReleasePolicy(NamedTuple):
    after_run: tuple[str, ...] | None  # graphs released after every run; None: every graph
    when_done: bool  # release a graph when its caller says it is done with it


DEFAULT_RELEASE = {"f32": "steps", "bf16": "encoders"}  # by OV_PRECISIONS, when none is given
RELEASE_MEMORY: dict[str, ReleasePolicy] = {
    "steps": ReleasePolicy((TEXT_ENCODER, IMAGE_ENCODER), when_done=True),
    "encoders": ReleasePolicy((TEXT_ENCODER, IMAGE_ENCODER), when_done=False),
    "all": ReleasePolicy(None, when_done=False),
    "none": ReleasePolicy((), when_done=False),
}
MISSING = "backend {name!r} needs OpenVINO, which is not installed: pip install 'escnet[openvino]' (or openvino)"


def import_openvino(name: str = "ov-cpu") -> Any:
    """The ``openvino`` module, or one BackendError line naming the extra to install."""
    try:
        import openvino
    except ImportError:
        raise BackendError(MISSING.format(name=name)) from None
    return openvino


def default_model_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/escnet/openvino`` (``~/.cache/escnet/openvino``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "escnet" / "openvino"


def read_graph(folder: Path, manifest: Manifest, graph: str) -> bytes:
    """The bytes of ``graph``'s file as :func:`verified_graph` read and hashed them (the bytes
    compiled are the bytes checked). External data is refused: OpenVINO reads it from paths."""
    verified = verified_graph(folder, manifest, graph)  # ManifestError when tampered or outside the folder
    if verified.external:
        raise BackendError(
            f"{verified.file}: keeps its weights in external data, which the OpenVINO backend cannot load "
            "from verified bytes; use an ONNX Runtime backend for these artifacts"
        )
    return verified.model


@dataclass(frozen=True)
class OvOptions:
    """How the graphs are compiled (all of it is part of the compiled-model cache key)."""

    threads: int | None = None  # INFERENCE_NUM_THREADS; None: OpenVINO's choice
    num_streams: int | None = None  # None: 1 under LATENCY, OpenVINO's choice under THROUGHPUT
    performance_hint: PerformanceHint = "LATENCY"

    def config(self, precision: str) -> dict[str, Any]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": self.performance_hint}
        streams = self.num_streams if self.num_streams else (1 if self.performance_hint == "LATENCY" else None)
        if streams:
            config["NUM_STREAMS"] = str(streams)
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return config


def _check_options(threads: object, num_streams: object, performance_hint: object, release_memory: object) -> None:
    """One BackendError line for an option of the wrong kind, before OpenVINO is touched."""
    for what, value in (("threads", threads), ("num_streams", num_streams)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BackendError(f"{what} {value!r}: expected a whole number >= 1 (or None)")
    if performance_hint not in PERFORMANCE_HINTS:
        raise BackendError(f"performance_hint {performance_hint!r}: expected one of {', '.join(PERFORMANCE_HINTS)}")
    if release_memory is not None and (not isinstance(release_memory, str) or release_memory not in RELEASE_MEMORY):
        raise BackendError(f"release_memory {release_memory!r}: expected one of {', '.join(RELEASE_MEMORY)}")


# OpenVINO 2026.4's CPU plugin finds no implementation for the int8 guidance convolutions of the
# quantised decoder under a bf16 hint ("No suitable implementations"); the runtimes refuse up front.
INT8_UNDER_BF16 = (
    "{name} on int8 artifacts: OpenVINO's CPU plugin cannot compile their decoder in bf16 "
    "(no implementation for its int8 convolutions); use ov-cpu, which runs their QDQ pairs in int8"
)


class OvBackend(Backend):
    """One compiled model and a pool of infer requests per graph, made on first use of the graph."""

    def __init__(
        self,
        folder: str | Path,
        manifest: Manifest,
        name: str = "ov-cpu",
        threads: int | None = None,
        model_cache: bool = True,
        model_cache_dir: str | Path | None = None,
        num_streams: int | None = None,
        release_memory: str | None = None,
        performance_hint: PerformanceHint = "LATENCY",
    ) -> None:
        if name not in OV_PRECISIONS:
            raise BackendError(f"unknown OpenVINO backend {name!r}; expected one of {sorted(OV_PRECISIONS)}")
        if OV_PRECISIONS[name] != "f32" and manifest.weights_precision() == "int8":
            raise BackendError(INT8_UNDER_BF16.format(name=name))
        _check_options(threads, num_streams, performance_hint, release_memory)
        self.release_memory = release_memory or DEFAULT_RELEASE[OV_PRECISIONS[name]]
        self.ov = import_openvino(name)
        super().__init__(name, "fp32" if OV_PRECISIONS[name] == "f32" else "bf16", manifest)  # cache key
        self.folder = Path(folder)
        self.options = OvOptions(threads, num_streams, performance_hint)
        where = Path(model_cache_dir) if model_cache_dir else default_model_cache_dir()
        self.model_cache_dir: Path | None = where if model_cache else None
        self.core = self.ov.Core()
        try:
            self.cache = CompiledModelCache(where) if model_cache else None
        except OSError as e:
            raise BackendError(f"model_cache_dir {where}: cannot be used ({e.strerror or type(e).__name__})") from None
        self._compiled: dict[str, Any] = {}
        self._pools: dict[str, RequestPool] = {}
        self._lock = threading.Lock()  # held while a graph is compiled
        self.graph_precision: dict[str, str] = {}  # graph -> INFERENCE_PRECISION_HINT it was compiled with
        self.f32_islands: dict[str, tuple[str, ...]] = {}  # graph -> nodes marked to stay f32

    def _pool(self, graph: str) -> RequestPool:
        pool = self._pools.get(graph)
        if pool is not None:
            return pool
        with self._lock:
            if graph not in self._pools:
                compiled = self._compile(graph)
                size = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
                self._compiled[graph] = compiled
                self._pools[graph] = RequestPool(compiled, max(size, 1))
            return self._pools[graph]

    def _read(self, graph: str) -> Any:
        """``graph`` as an OpenVINO model, from verified bytes, its names checked against the contract."""
        spec = self.manifest.graphs[graph]
        try:
            model = self.core.read_model(read_graph(self.folder, self.manifest, graph))
        except BackendError:
            raise
        except Exception as e:  # OpenVINO raises RuntimeError / its own types with multi-line text
            raise BackendError(f"{spec.file}: OpenVINO could not read it ({type(e).__name__}: {_first(e)})") from None
        inputs = [p.get_any_name() for p in model.inputs]
        outputs = [r.get_any_name() for r in model.outputs]
        if inputs != spec.input_names or outputs != spec.output_names:
            raise BackendError(
                f"{spec.file}: graph inputs {inputs} / outputs {outputs} differ from the manifest's "
                f"{spec.input_names} / {spec.output_names}"
            )
        return model

    def _compile(self, graph: str) -> Any:
        """The compiled model of ``graph``: from the cache when a verified entry exists, else compiled
        (islands marked under bf16) and stored."""
        spec = self.manifest.graphs[graph]
        model = self._read(graph)
        precision = OV_PRECISIONS[self.name]
        islands = tuple(mark_f32_islands(model)) if precision != "f32" else ()
        config = self.options.config(precision)
        # the islands follow from the graph and the rule: its version and their count identify them
        # (names the ONNX front end makes are new on every read)
        marks = [ISLAND_RULE, len(islands)]
        key = entry_key({"graph": self.graph_sha256(graph), "config": config, "islands": marks, **self._device()})
        self.graph_precision[graph], self.f32_islands[graph] = precision, islands
        blob = self.cache.load(key, _max_blob_bytes(self.folder, spec.file)) if self.cache else None
        if blob is not None:
            try:
                return self.core.import_model(blob, "CPU", config)
            except Exception as e:
                self.cache.damaged(key, f"OpenVINO could not import it: {_first(e)}")
        try:
            compiled = self.core.compile_model(
                through_ir(self.ov, self.core, model) if islands else model, "CPU", config
            )
        except Exception as e:
            raise BackendError(
                f"{spec.file}: OpenVINO could not compile it ({type(e).__name__}: {_first(e)})"
            ) from None
        del model  # the compiled model holds what it needs
        if self.cache is not None:
            self.cache.store(key, compiled.export_model().getbuffer())
        return compiled

    def _device(self) -> dict[str, Any]:
        """What a compiled model depends on besides the graph and its config."""
        props = ("FULL_DEVICE_NAME", "OPTIMIZATION_CAPABILITIES")
        return {"openvino": self.ov.__version__, **{p: self.core.get_property("CPU", p) for p in props}}

    def run_impl(self, spec: GraphSpec, inputs: Mapping[str, Any], keep_on_device: Sequence[str]) -> dict[str, Any]:
        """Run one graph on a request of its pool; outputs are copies (the request's buffers are
        reused by its next run)."""
        graph = spec.name
        pool = self._pool(graph)
        feed = {name: np.ascontiguousarray(inputs[name]) for name in spec.input_names}
        with pool.request() as request:
            try:
                # inputs are copied into the request's own tensors: shared ones would stay referenced by the
                # request after these arrays are gone, and OpenVINO may write into shared inputs
                request.infer(feed, share_inputs=False, share_outputs=False)
            except Exception as e:
                raise BackendError(f"{graph}: OpenVINO failed ({type(e).__name__}: {_first(e)})") from None
            outputs = {name: request.get_tensor(name).data.copy() for name in spec.output_names}
        released = RELEASE_MEMORY[self.release_memory].after_run
        if released is None or graph in released:
            self._release(graph)
        return outputs

    def _release(self, graph: str) -> None:
        """Hand ``graph``'s working memory back to OpenVINO, and the freed pages to the OS, when none
        of its requests runs (a request running elsewhere needs it)."""
        with self._pools[graph].quiet() as quiet:
            if quiet:
                self._compiled[graph].release_memory()
                trim_heap()

    def release(self, graph: str) -> None:
        """The caller is done with ``graph`` for now: under the ``"steps"`` policy its compiled
        model hands its working memory back (re-allocated on its next run)."""
        if graph in self._pools and RELEASE_MEMORY[self.release_memory].when_done:  # _pools: set last
            self._release(graph)

    def runtime_precisions(self, graph: str) -> Counter[str]:
        """Compiled ``graph``'s executed float nodes by the precision they run in (e.g. f32 / bf16),
        read from OpenVINO's runtime model: what the plugin really does, not what was asked."""
        return Counter(precision for _name, _kind, precision in self.node_precisions(graph))

    def node_precisions(self, graph: str) -> list[tuple[str, str, str]]:
        """(node name, layer type, runtime precision) of every executed node of compiled ``graph``
        that computes (constants, inputs, outputs, reorders and reshapes left out)."""
        self._pool(graph)
        rows = []
        for op in self._compiled[graph].get_runtime_model().get_ops():
            info = op.get_rt_info()
            kind = info["layerType"].astype(str)
            if kind in ("Const", "Input", "Output", "Reorder", "Reshape"):
                continue  # no arithmetic
            rows.append((op.get_friendly_name(), kind, info["runtimePrecision"].astype(str)))
        return rows

    def close(self) -> None:
        """Release every infer request and compiled model (their weights and working memory)."""
        with self._lock:
            for pool in self._pools.values():
                pool.clear()
            self._pools.clear()
            self._compiled.clear()


def _max_blob_bytes(folder: Path, file: str) -> int:
    """A compiled model of ``file`` holds its weights and the graph: a bound for a sane blob."""
    try:
        size = (folder / file).stat().st_size
    except OSError:
        size = 0
    return 4 * size + (64 << 20)


def _first(e: BaseException) -> str:
    """OpenVINO's exception texts span many lines; the first non-empty one says what happened."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
