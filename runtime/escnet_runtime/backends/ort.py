"""ONNX Runtime with one chosen execution provider; refuses to run on any other.

ONNX Runtime silently falls back to the CPU provider when the requested one cannot load (no
CUDA libraries, a CPU-only wheel). This backend checks ``session.get_providers()`` after every
session is created and raises instead. On CUDA / TensorRT providers it uses IO binding: outputs
that the next graph reads (image features -> decoder) and the class embeddings stay on the GPU.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from escnet_runtime.backends.base import Backend
from escnet_runtime.contract import TEXT_ENCODER, GraphSpec
from escnet_runtime.errors import BackendError
from escnet_runtime.graph_files import GraphBytes, verified_graph
from escnet_runtime.manifest import Manifest

PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


CpuArena = Literal["shared", "session", "off"]
CPU_ARENAS: tuple[str, ...] = ("shared", "session", "off")

# ONNX Runtime graph rewrites left out on the CPU provider. SkipLayerNormFusion turns residual
# Add + LayerNormalization into SkipLayerNormalization, whose CPU kernel (onnxruntime 1.32) is
# far slower than the two ops it replaces: measured on vit-b16's decoder steps at 32 classes,
# 20 ms of SkipLayerNormalization per block step against about 6 ms for the Adds and
# LayerNormalizations, 7% of the chunked decoder.
CPU_DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)

_shared_cpu_arena = False
_arena_lock = threading.Lock()


def share_cpu_arena() -> None:
    """Register one CPU arena allocator in ONNX Runtime's process-wide environment (once per
    process); sessions created with ``session.use_env_allocators`` then draw from it."""
    global _shared_cpu_arena
    with _arena_lock:
        if _shared_cpu_arena:
            return
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({}))
        _shared_cpu_arena = True


def cpu_session_options(opts: ort.SessionOptions, arena: CpuArena) -> None:
    """Where a CPU session's working memory comes from.

    "shared": one arena for every session of the process (``_graph_arena`` exempts the text
    encoder). The decoder runs as six step graphs,
    one after the other; without an arena every run maps and faults in fresh pages for each large
    tensor, and with an arena per session each session keeps its own peak. Measured on vit-b16,
    150 classes in chunks of 32: 5.0 s with the shared arena, 6.9 s without one, and peak RSS
    1.15 GB against 0.88 GB (an arena per session: as fast, 4.2 GB at 64 classes).
    "session": ONNX Runtime's default, an arena per session. "off": no arena.
    """
    opts.enable_cpu_mem_arena = arena != "off"
    if arena == "shared":
        share_cpu_arena()
        opts.add_session_config_entry("session.use_env_allocators", "1")


def _graph_arena(graph: str, arena: CpuArena) -> CpuArena:
    """The text encoder runs once per vocabulary (its embeddings are then cached), in batches of
    hundreds of texts: in the shared arena its peak would stay reserved for the decoder's whole
    life (vit-b16, 847 classes: 3.8 GB peak RSS against 2.1 GB). It gets no arena instead."""
    return "off" if arena == "shared" and graph == TEXT_ENCODER else arena


def _provider_options(provider: str, device_id: int, cache_dir: Path) -> list[Any]:
    """The provider list handed to ONNX Runtime (TensorRT caches its engines: no rebuild per run)."""
    if provider == "CUDAExecutionProvider":
        return [(provider, {"device_id": device_id})]
    if provider == "TensorrtExecutionProvider":
        trt_opts = {
            "device_id": device_id,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache_dir),
        }
        # Nodes TensorRT cannot take run on CUDA, not on the CPU.
        return [(provider, trt_opts), ("CUDAExecutionProvider", {"device_id": device_id})]
    return [provider]


def _session_from_bytes(
    graph: GraphBytes, opts: ort.SessionOptions, providers: list[Any], disabled: list[str] | None
) -> ort.InferenceSession:
    """A session built from verified bytes; external-data files go in from memory (ONNX Runtime
    copies them while it builds the session), never read again from disk."""
    if graph.external:
        names = list(graph.external)
        blobs = [graph.external[n] for n in names]
        opts.add_external_initializers_from_files_in_memory(names, blobs, [len(b) for b in blobs])
    return ort.InferenceSession(graph.model, sess_options=opts, providers=providers, disabled_optimizers=disabled)


class OrtBackend(Backend):
    """Sessions are created on first use of each graph (a text-only run never loads the decoder).

    Thread safety: ONNX Runtime's ``InferenceSession.run`` may be called from several threads at
    once; a lock makes sure each graph's session is created once.

    Each session is built from the graph's bytes as read and hashed at that moment
    (``verified_graph``): loading lazily keeps a text-only run from reading the decoder, and
    re-reading at load means a file swapped after ``Segmenter(...)`` is refused, not run.
    """

    def __init__(
        self,
        folder: str | Path,
        manifest: Manifest,
        name: str = "ort-cpu",
        threads: int | None = None,
        device_id: int = 0,
        trt_cache_dir: str | Path | None = None,
        cpu_arena: CpuArena = "shared",
    ) -> None:
        if name not in PROVIDERS:
            raise BackendError(f"unknown ONNX Runtime backend {name!r}; expected one of {sorted(PROVIDERS)}")
        super().__init__(name, "fp32", manifest)  # the exported ONNX graphs are float32
        self.folder = Path(folder)
        self.provider = PROVIDERS[name]
        available = ort.get_available_providers()
        if self.provider not in available:
            raise BackendError(
                f"backend {name!r} needs ONNX Runtime's {self.provider}, but this onnxruntime "
                f"{ort.__version__} only has {', '.join(available)} (install onnxruntime-gpu for CUDA/TensorRT)"
            )
        if cpu_arena not in CPU_ARENAS:
            raise BackendError(f"cpu_arena {cpu_arena!r}: expected one of {', '.join(CPU_ARENAS)}")
        self.device_id = device_id
        self.threads = threads
        self.cpu_arena = cpu_arena
        self.trt_cache_dir = Path(trt_cache_dir) if trt_cache_dir else self.folder / "ort_trt_cache"
        self.on_gpu = self.provider != "CPUExecutionProvider"
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()  # held while a session is created

    def _session(self, graph: str) -> ort.InferenceSession:
        session = self._sessions.get(graph)
        if session is not None:
            return session
        with self._lock:
            session = self._sessions.get(graph)
            if session is None:
                session = self._sessions[graph] = self._new_session(graph)
            return session

    def _new_session(self, graph: str) -> ort.InferenceSession:
        spec = self.manifest.graphs[graph]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only; fall-back is detected below, not read from logs
        disabled: list[str] | None = None
        if self.on_gpu:
            opts.enable_cpu_mem_arena = False  # host-side tensors only
        else:
            cpu_session_options(opts, _graph_arena(graph, self.cpu_arena))
            disabled = list(CPU_DISABLED_OPTIMIZERS)
        if self.threads:
            opts.intra_op_num_threads = self.threads
        providers = _provider_options(self.provider, self.device_id, self.trt_cache_dir)
        if self.provider == "TensorrtExecutionProvider":
            self.trt_cache_dir.mkdir(parents=True, exist_ok=True)
        verified = verified_graph(self.folder, self.manifest, graph)  # ManifestError when tampered
        try:
            with warnings.catch_warnings():  # ORT warns and falls back; the check below raises instead
                warnings.simplefilter("ignore", UserWarning)
                session = _session_from_bytes(verified, opts, providers, disabled)
        except Exception as e:  # onnxruntime raises its own exception types, none of them exported stably
            raise BackendError(f"{spec.file}: ONNX Runtime could not load it ({type(e).__name__}: {e})") from None
        running = session.get_providers()
        if not running or running[0] != self.provider:
            raise BackendError(
                f"backend {self.name!r}: ONNX Runtime fell back to {', '.join(running)} instead of "
                f"{self.provider} for {spec.file} (is CUDA/TensorRT installed and a GPU visible?)"
            )
        self._check_io(spec, session)
        return session

    @staticmethod
    def _check_io(spec: GraphSpec, session: ort.InferenceSession) -> None:
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != spec.input_names or outputs != spec.output_names:
            raise BackendError(
                f"{spec.file}: graph inputs {inputs} / outputs {outputs} differ from the manifest's "
                f"{spec.input_names} / {spec.output_names}"
            )

    def run_impl(self, spec: GraphSpec, inputs: Mapping[str, Any], keep_on_device: Sequence[str]) -> dict[str, Any]:
        """Run one graph; with a GPU provider, outputs named in ``keep_on_device`` stay OrtValues on it."""
        graph = spec.name
        session = self._session(graph)
        try:
            if not self.on_gpu:
                values = session.run(spec.output_names, dict(inputs))
                return dict(zip(spec.output_names, values, strict=True))
            return self._run_bound(session, spec, inputs, keep_on_device)
        except BackendError:
            raise
        except Exception as e:
            raise BackendError(f"{graph}: ONNX Runtime failed ({type(e).__name__}: {e})") from None

    def _run_bound(
        self, session: ort.InferenceSession, spec: GraphSpec, inputs: Mapping[str, Any], keep: Sequence[str]
    ) -> dict[str, Any]:
        binding = session.io_binding()
        for name in spec.input_names:
            value = inputs[name]
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)  # already on the device: no copy
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in spec.output_names:
            binding.bind_output(name, "cuda", self.device_id)
        session.run_with_iobinding(binding)
        outputs = dict(zip(spec.output_names, binding.get_outputs(), strict=True))
        return {name: (v if name in keep else v.numpy()) for name, v in outputs.items()}

    def put(self, array: np.ndarray) -> Any:
        if not self.on_gpu:
            return array
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", self.device_id)

    def to_host(self, value: Any) -> np.ndarray:
        return value.numpy() if isinstance(value, ort.OrtValue) else np.asarray(value)

    def close(self) -> None:
        """Drop every session (its weights; a per-session arena). The process-wide shared arena,
        when used, stays registered with ONNX Runtime for the next sessions."""
        self._sessions.clear()
