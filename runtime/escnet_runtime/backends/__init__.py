"""Backends behind one protocol: ``run(graph, inputs) -> outputs`` (see :class:`base.Backend`).

One class per file; ``create_backend`` maps a backend name to its class, nothing else branches
over backends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from escnet_runtime.backends.base import Backend
from escnet_runtime.errors import BackendError
from escnet_runtime.manifest import Manifest


def _ort(name: str) -> Callable[..., Backend]:
    def make(folder: Path, manifest: Manifest, **options: Any) -> Backend:
        from escnet_runtime.backends.ort import OrtBackend

        return OrtBackend(folder, manifest, name, **options)

    return make


def _ov(name: str) -> Callable[..., Backend]:
    def make(folder: Path, manifest: Manifest, **options: Any) -> Backend:
        from escnet_runtime.backends.ov import OvBackend  # OpenVINO is imported inside, only now

        return OvBackend(folder, manifest, name, **options)

    return make


def _trt(folder: Path, manifest: Manifest, **options: Any) -> Backend:
    from escnet_runtime.backends.trt import TrtBackend  # TensorRT is imported inside, only now

    return TrtBackend(folder, manifest, **options)


BACKENDS: dict[str, Callable[..., Backend]] = {
    "ort-cpu": _ort("ort-cpu"),
    "ort-cuda": _ort("ort-cuda"),
    "ort-trt": _ort("ort-trt"),
    "trt": _trt,
    "ov-cpu": _ov("ov-cpu"),
    "ov-cpu-bf16": _ov("ov-cpu-bf16"),
}


def create_backend(name: str, folder: str | Path, manifest: Manifest, **options: Any) -> Backend:
    """The backend called ``name`` for an artifacts folder; options go to its class."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return BACKENDS[name](Path(folder), manifest, **options)


__all__ = ["BACKENDS", "Backend", "create_backend"]
