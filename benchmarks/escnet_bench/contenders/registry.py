"""The contender registry: a --backends name -> its spec, and how to open it (or why it cannot run here)."""

from __future__ import annotations

from escnet import ESCNet
from escnet_bench.contenders.base import Contender, ContenderSpec
from escnet_bench.contenders.cpp import CPP_SPECS, CppContender
from escnet_bench.contenders.runtime import RUNTIME_SPECS, RuntimeContender, unavailable_reason
from escnet_bench.contenders.torch_eager import TORCH_SPECS, TorchContender
from escnet_bench.options import ALL_BACKENDS, BenchOptions

SPECS: dict[str, ContenderSpec] = {**TORCH_SPECS, **RUNTIME_SPECS, **CPP_SPECS}
assert set(SPECS) == set(ALL_BACKENDS), "options.ALL_BACKENDS and the backend specs disagree"


def contender_spec(name: str) -> ContenderSpec:
    return SPECS[name]


def open_contender(name: str, model: ESCNet, opts: BenchOptions) -> Contender:
    """Open the contender called ``name``; raises ``ContenderUnavailable`` with the reason when it cannot run here."""
    if name in TORCH_SPECS:
        return TorchContender(name, model, class_chunk=opts.class_chunk)
    if name in CPP_SPECS:
        return CppContender(name, opts.artifacts, opts.cpp_lib, class_chunk=opts.class_chunk)
    return RuntimeContender(name, opts.artifacts, batch_size=max(opts.batch), class_chunk=opts.class_chunk)


def runtime_backends_to_run(opts: BenchOptions) -> list[str]:
    """The requested runtime and C++ backends this machine may run (they need the artifacts folder)."""
    runtime = [n for n in opts.backends if n in RUNTIME_SPECS and unavailable_reason(n) is None]
    return runtime + [n for n in opts.backends if n in CPP_SPECS]
