"""The backend registry: a name -> its spec, and how to open it (or why it cannot run here)."""

from __future__ import annotations

from escnet import ESCNet

from .backend import BackendSpec, BenchBackend
from .backend_runtime import RUNTIME_SPECS, RuntimeBackend, unavailable_reason
from .backend_torch import TORCH_SPECS, TorchBackend
from .options import ALL_BACKENDS, BenchOptions

SPECS: dict[str, BackendSpec] = {**TORCH_SPECS, **RUNTIME_SPECS}
assert set(SPECS) == set(ALL_BACKENDS), "options.ALL_BACKENDS and the backend specs disagree"


def backend_spec(name: str) -> BackendSpec:
    return SPECS[name]


def open_backend(name: str, model: ESCNet, opts: BenchOptions) -> BenchBackend:
    """Open backend ``name``; raises ``BackendUnavailable`` with the reason when it cannot run here."""
    if name in TORCH_SPECS:
        return TorchBackend(name, model, class_chunk=opts.class_chunk)
    return RuntimeBackend(name, opts.artifacts, batch_size=max(opts.batch), class_chunk=opts.class_chunk)


def runtime_backends_to_run(opts: BenchOptions) -> list[str]:
    """The requested runtime backends this machine may run (they need the artifacts folder)."""
    return [n for n in opts.backends if n in RUNTIME_SPECS and unavailable_reason(n) is None]
