"""TensorRT engines through TensorRT's Python API (TensorRT 10: named tensors, enqueueV3).

TensorRT and cuda-python (device memory, copies, a stream) are imported only when this backend
is built; where either is missing it raises one clear BackendError. Device buffers persist per
tensor and grow on demand; outputs the next graph reads can stay on the GPU (``keep_on_device``),
each in device memory of its own, like the constants ``put`` places (freed when dropped).
Engines are ``<artifacts>/trt/<graph>.engine`` with the build manifest ``trt/build.json``
(``escnet-export trt`` writes both): each engine is read once, confined to the engines folder,
its sha256 checked against it, and deserialised from those very bytes; the sha256 of the ONNX
graph it was built from is checked against the artifacts manifest.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from escnet_runtime.backends.base import Backend
from escnet_runtime.contract import BUILD_MANIFEST_FILE, ENGINE_DIR, ENGINE_SUFFIX, GraphSpec
from escnet_runtime.errors import BackendError
from escnet_runtime.manifest import Manifest, ManifestError, read_hashed


def _import_tensorrt() -> tuple[Any, Any]:
    """(tensorrt, cudart) or a BackendError naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError(
            "backend 'trt' needs TensorRT's Python package (pip install tensorrt) and a CUDA GPU; "
            "it is not installed here (use --backend ort-cpu)"
        ) from None
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise BackendError("backend 'trt' needs cuda-python for device memory (pip install cuda-python)") from None
    return trt, cudart


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return (error, *values); raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendError(f"CUDA error in {what}: {err}")
    return values[0] if len(values) == 1 else values


@dataclass
class DeviceTensor:
    """A tensor living in a device buffer owned by the backend."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype


class TrtBackend(Backend):
    """Thread safety: calls are serialised by a lock (one CUDA stream, per-graph execution
    contexts and device buffers reused by every call); TensorRT runs one graph at a time."""

    def __init__(
        self, folder: str | Path, manifest: Manifest, engines_dir: str | Path | None = None, device_id: int = 0
    ) -> None:
        trt, cudart = _import_tensorrt()
        self.trt, self.cudart = trt, cudart
        super().__init__("trt", "fp32", manifest)
        self.engines_dir = Path(engines_dir) if engines_dir else Path(folder) / ENGINE_DIR
        self.build = self._read_build()
        self.precision = str(self.build.get("precision", "fp32"))
        _check(cudart.cudaSetDevice(device_id), "cudaSetDevice")
        self.stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engines: dict[str, Any] = {}
        self._contexts: dict[str, Any] = {}
        self._files: dict[str, Path] = {}
        self._buffers: dict[tuple[str, str], tuple[int, int]] = {}  # (graph, tensor) -> (ptr, bytes)
        self._lock = threading.RLock()  # every call that touches the stream, contexts or buffers

    def _read_build(self) -> dict[str, Any]:
        path = self.engines_dir / BUILD_MANIFEST_FILE
        if not path.is_file():
            raise BackendError(f"no {BUILD_MANIFEST_FILE} in {self.engines_dir} (run `escnet-export trt` first)")
        try:
            data = json.loads(path.read_text())
            engines = data["engines"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BackendError(f"{path}: unreadable build manifest ({type(e).__name__})") from None
        for graph, spec in self.manifest.graphs.items():
            record = engines.get(graph) if isinstance(engines, dict) else None
            if not record:
                raise BackendError(f"{path}: no engine for {graph}")
            if record.get("onnx_sha256") != self.manifest.files.get(spec.file):
                raise BackendError(f"{path}: the {graph} engine was built from another {spec.file}; rebuild it")
        return data

    def _engine_bytes(self, graph: str) -> tuple[bytes, Path]:
        """The engine's bytes, read once and checked against build.json's sha256."""
        record = self.build["engines"][graph]
        name = record.get("file", f"{graph}{ENGINE_SUFFIX}")
        expected = record.get("sha256")
        if not isinstance(name, str) or not isinstance(expected, str):
            raise BackendError(f"{self.engines_dir / BUILD_MANIFEST_FILE}: engine record of {graph} is incomplete")
        try:
            data = read_hashed(self.engines_dir, name, expected, what=BUILD_MANIFEST_FILE)
        except ManifestError as e:
            raise BackendError(f"{e}; rebuild the engines (escnet-export trt)") from None
        return data, self.engines_dir / name

    def graph_sha256(self, graph: str) -> str:
        return str(self.build["engines"][graph]["sha256"])

    def _context(self, graph: str) -> Any:
        if graph not in self._contexts:
            data, path = self._engine_bytes(graph)
            engine = self._runtime.deserialize_cuda_engine(data)  # the bytes that were hashed
            if engine is None:
                raise BackendError(f"{path}: TensorRT could not deserialize it (other TensorRT version or GPU?)")
            self._engines[graph], self._files[graph] = engine, path
            self._contexts[graph] = engine.create_execution_context()
        return self._contexts[graph]

    def _buffer(self, graph: str, tensor: str, nbytes: int) -> int:
        ptr, size = self._buffers.get((graph, tensor), (0, 0))
        if size < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr), "cudaFree")
            ptr = int(_check(self.cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))
            self._buffers[(graph, tensor)] = (ptr, nbytes)
        return ptr

    def run_impl(self, spec: GraphSpec, inputs: Mapping[str, Any], keep_on_device: Sequence[str]) -> dict[str, Any]:
        """One call at a time: the engines share one stream, their contexts and device buffers."""
        with self._lock:
            return self._run(spec, inputs, keep_on_device)

    def _run(self, spec: GraphSpec, inputs: Mapping[str, Any], keep_on_device: Sequence[str]) -> dict[str, Any]:
        trt, cudart = self.trt, self.cudart
        graph = spec.name
        context, engine = self._context(graph), self._engines[graph]
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        staged = []  # host arrays stay alive until the stream is synchronised
        for name in spec.input_names:
            value = inputs[name]
            want = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if isinstance(value, DeviceTensor):
                if value.dtype != want:
                    raise BackendError(f"{graph}.{name}: device tensor is {value.dtype}, the engine takes {want}")
                shape, ptr = value.shape, value.ptr
            else:
                host = np.ascontiguousarray(value, dtype=want)
                staged.append(host)
                shape, ptr = host.shape, self._buffer(graph, name, host.nbytes)
                _check(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, self.stream), "H2D copy")
            if not context.set_input_shape(name, tuple(shape)):
                raise BackendError(f"{graph}.{name}: shape {tuple(shape)} is outside the engine's profile")
            context.set_tensor_address(name, ptr)
        outputs: dict[str, Any] = {}
        for name in spec.output_names:
            shape = tuple(context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            if name in keep_on_device:  # the caller's own buffer: no later call writes into it
                outputs[name] = self._owned(nbytes, shape, dtype)
            else:
                outputs[name] = DeviceTensor(self._buffer(graph, name, nbytes), shape, dtype)
            context.set_tensor_address(name, outputs[name].ptr)
        if not context.execute_async_v3(int(self.stream)):
            raise BackendError(f"{graph}: TensorRT execution failed")
        result: dict[str, Any] = {}
        for name, dev in outputs.items():
            if name in keep_on_device:
                result[name] = dev
                continue
            host = np.empty(dev.shape, dtype=dev.dtype)
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, dev.ptr, host.nbytes, d2h, self.stream), "D2H copy")
            result[name] = host
        _check(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        staged.clear()
        return {
            k: (v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float16 else v)
            for k, v in result.items()
        }

    def put(self, array: np.ndarray) -> Any:
        """Copy a constant to the device, into memory of its own (freed when the value is dropped)."""
        with self._lock:
            return self._put(np.ascontiguousarray(array))

    def _put(self, host: np.ndarray) -> DeviceTensor:
        value = self._owned(host.nbytes, host.shape, host.dtype)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self.cudart.cudaMemcpy(value.ptr, host.ctypes.data, host.nbytes, kind), "H2D copy")
        return value

    def _owned(self, nbytes: int, shape: tuple[int, ...], dtype: np.dtype) -> DeviceTensor:
        """Device memory that belongs to the returned value: freed when the value is dropped, so a
        value one thread holds is never overwritten or freed by another thread's call."""
        ptr = int(_check(self.cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))
        value = DeviceTensor(ptr, tuple(shape), np.dtype(dtype))
        weakref.finalize(value, self.cudart.cudaFree, ptr)
        return value

    def close(self) -> None:
        """Free every device buffer, the execution contexts, engines and the stream (values handed
        out, kept outputs and constants, free their own memory when dropped)."""
        with self._lock:
            self._free()

    def _free(self) -> None:
        free = self.cudart.cudaFree
        for ptr, _size in self._buffers.values():
            _check(free(ptr), "cudaFree")
        self._buffers.clear()
        self._contexts.clear()  # contexts before their engines
        self._engines.clear()
        if self.stream is not None:
            _check(self.cudart.cudaStreamDestroy(self.stream), "cudaStreamDestroy")
            self.stream = None

    def to_host(self, value: Any) -> np.ndarray:
        if not isinstance(value, DeviceTensor):
            return np.asarray(value)
        host = np.empty(value.shape, dtype=value.dtype)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            _check(self.cudart.cudaMemcpy(host.ctypes.data, value.ptr, host.nbytes, kind), "D2H copy")
        return host
