"""OpenVINO on the CPU through OpenVINO's own Python API (``ov.Core``, ``read_model``,
``compile_model``, one infer request per graph).

``ov-cpu`` sets ``INFERENCE_PRECISION_HINT`` to f32 explicitly: OpenVINO's default on a CPU with
AVX-512 bf16 is bf16, which moves the pseudo prompts. ``ov-cpu-bf16`` runs in bf16 except the
graphs that decide a prompt point (``precision_rule``): a graph with a decision operator on float
values, or whose output becomes one in the next step (with per-block prompts: ``decoder_open``, every
``decoder_block_k`` and ``decoder_attend_k``, the all-classes ``decoder``), is compiled in f32 as a
whole. OpenVINO 2026.4's CPU plugin offers no working per-node switch from Python:
``rt_info["disable_fp16_compression_0"]`` changes nothing, and ``DisablePrecisionConversion``
(through IR only) left MatMuls and plugin-made nodes in bf16.
:meth:`OvBackend.runtime_precisions` reports what each compiled graph really runs in.

Graphs are read from the bytes whose sha256 the manifest lists (:func:`read_graph`) and compiled
with dynamic batch and class axes; compiled models are cached in ``model_cache_dir`` (OpenVINO's
``CACHE_DIR``; default ``~/.cache/escnet/openvino``, ``model_cache=False`` turns it off).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from escnet_runtime.backends.base import Backend
from escnet_runtime.contract import IMAGE_ENCODER, TEXT_ENCODER, GraphSpec
from escnet_runtime.errors import BackendError
from escnet_runtime.graph_files import verified_graph
from escnet_runtime.heap import trim_heap
from escnet_runtime.manifest import Manifest
from escnet_runtime.precision_rule import DECISION_OUTPUTS, OPENVINO_DECISION_OPS

OV_PRECISIONS = {"ov-cpu": "f32", "ov-cpu-bf16": "bf16"}


# When compiled models hand their intermediate buffers back (``CompiledModel.release_memory``):
# OpenVINO keeps each graph's working memory between runs, and with eight graphs those add up
# (ONNX Runtime shares one arena instead). Per policy: the graphs released after every run, and
# whether a graph is released when its caller says it is done with it (:meth:`OvBackend.release`:
# the chunked decoder, after a step has run on its last chunk of classes).
#   "steps" (default): the encoders after every run (each runs once per vocabulary / image, before
#       the decoder), each decoder step after its last chunk: one step's working memory at a time;
#   "encoders": the encoders only (every step keeps its memory: ~5 % faster, 1.2-1.3x ORT's peak);
#   "all": every graph after every run (re-allocated for every chunk: slowest); "none".
class ReleasePolicy(NamedTuple):
    after_run: tuple[str, ...] | None  # graphs released after every run; None: every graph
    when_done: bool  # release a graph when its caller says it is done with it


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


def decision_nodes(model: Any) -> list[str]:
    """Names of the nodes of an OpenVINO model that decide a prompt point: decision operators on
    float values, and results that are ``DECISION_OUTPUTS`` (decisions of the next step)."""
    kinds = set(OPENVINO_DECISION_OPS.values())
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in kinds and op.get_input_element_type(0).is_real():
            found.append(op.get_friendly_name())
    for result in model.get_results():
        if result.input_value(0).get_names() & DECISION_OUTPUTS:
            found.append(result.get_friendly_name())
    return found


class OvBackend(Backend):
    """One compiled model and infer request per graph, created on first use of the graph."""

    def __init__(
        self,
        folder: str | Path,
        manifest: Manifest,
        name: str = "ov-cpu",
        threads: int | None = None,
        model_cache: bool = True,
        model_cache_dir: str | Path | None = None,
        num_streams: int = 1,
        release_memory: str = "steps",
    ) -> None:
        if name not in OV_PRECISIONS:
            raise BackendError(f"unknown OpenVINO backend {name!r}; expected one of {sorted(OV_PRECISIONS)}")
        if release_memory not in RELEASE_MEMORY:
            raise BackendError(f"release_memory {release_memory!r}: expected one of {', '.join(RELEASE_MEMORY)}")
        self.release_memory = release_memory
        self.ov = import_openvino(name)
        super().__init__(name, "fp32" if OV_PRECISIONS[name] == "f32" else "bf16", manifest)  # cache key
        self.folder = Path(folder)
        self.threads = threads
        self.num_streams = num_streams
        where = Path(model_cache_dir) if model_cache_dir else default_model_cache_dir()
        self.model_cache_dir: Path | None = where if model_cache else None
        self.core = self.ov.Core()
        if self.model_cache_dir is not None:
            self.model_cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.core.set_property({"CACHE_DIR": str(self.model_cache_dir)})
        self._compiled: dict[str, Any] = {}
        self._requests: dict[str, Any] = {}
        self.graph_precision: dict[str, str] = {}  # graph -> INFERENCE_PRECISION_HINT it was compiled with

    def _config(self, precision: str) -> dict[str, Any]:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": str(self.num_streams),
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return config

    def _request(self, graph: str) -> Any:
        request = self._requests.get(graph)
        if request is not None:
            return request
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
        precision = OV_PRECISIONS[self.name]
        if precision != "f32" and decision_nodes(model):
            precision = "f32"  # this graph decides prompt points: all of it in f32
        try:
            compiled = self.core.compile_model(model, "CPU", self._config(precision))
        except Exception as e:
            why = f"{type(e).__name__}: {_first(e)}"
            raise BackendError(f"{spec.file}: OpenVINO could not compile it ({why})") from None
        del model  # the compiled model holds what it needs
        self._compiled[graph] = compiled
        self.graph_precision[graph] = precision
        self._requests[graph] = request = compiled.create_infer_request()
        return request

    def run_impl(self, spec: GraphSpec, inputs: Mapping[str, Any], keep_on_device: Sequence[str]) -> dict[str, Any]:
        """Run one graph; outputs are copies (the request's buffers are reused by its next run)."""
        graph = spec.name
        request = self._request(graph)
        feed = {name: np.ascontiguousarray(inputs[name]) for name in spec.input_names}
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
        """Hand ``graph``'s working memory back to OpenVINO, and the freed pages to the OS."""
        self._compiled[graph].release_memory()
        trim_heap()

    def release(self, graph: str) -> None:
        """The caller is done with ``graph`` for now: under the ``"steps"`` policy its compiled
        model hands its working memory back (re-allocated on its next run)."""
        if graph in self._compiled and RELEASE_MEMORY[self.release_memory].when_done:
            self._release(graph)

    def runtime_precisions(self, graph: str) -> Counter[str]:
        """Compiled ``graph``'s executed float nodes by the precision they run in (e.g. f32 / bf16),
        read from OpenVINO's runtime model: what the plugin really does, not what was asked."""
        self._request(graph)
        counts: Counter[str] = Counter()
        for op in self._compiled[graph].get_runtime_model().get_ops():
            info = op.get_rt_info()
            kind = info["layerType"].astype(str)
            if kind in ("Const", "Input", "Output", "Reorder", "Reshape"):
                continue  # no arithmetic
            counts[info["runtimePrecision"].astype(str)] += 1
        return counts

    def close(self) -> None:
        """Release every infer request and compiled model (their weights and working memory)."""
        self._requests.clear()
        self._compiled.clear()


def _first(e: BaseException) -> str:
    """OpenVINO's exception texts span many lines; the first non-empty one says what happened."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
