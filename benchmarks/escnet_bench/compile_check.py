"""``torch.compile`` contenders compile first in a fresh process, so that a crash there is a result.

Inductor writes C++ code, builds it and loads it into the process that calls the compiled
function. A fault in that code (a heap corruption ends the process with SIGABRT) takes the
whole benchmark with it, every backend already measured included, and no Python ``except`` can
catch it. So before a compiled CPU contender opens in the benchmark's process, a child
(:func:`compile_here`, run by :func:`escnet_bench.child.run_function`) builds the same model,
and for every (classes, batch) point makes the same calls the harness will make: each graph on
the reference's inputs and the end-to-end pipeline, each once. A child that dies or fails makes
the contender ``failed`` with one line (its signal and the last line of its stderr) and the run
goes on. A child that lives leaves inductor's on-disk caches warm for the benchmark's process,
which then compiles the same graphs from them: the child's compile times are the ones a user
meets first (``details()["compile_s_fresh_process"]``), the contender's own ``compile_s`` those
of a warm cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from escnet_bench.child import ChildError, run_function
from escnet_bench.isolated import IsolatedRequest


@dataclass(frozen=True)
class CompileCheck:
    failure: str | None  # None: the child lived; else one line, why the contender is not run
    compile_s: dict[str, float]  # "graph shape" -> seconds the fresh process took to compile it (cold caches)


def compile_in_child(request: IsolatedRequest) -> CompileCheck:
    """Run :func:`compile_here` in a fresh process."""
    try:
        run = run_function(compile_here, asdict(request))
    except ChildError as e:
        return CompileCheck(f"torch.compile failed in a fresh process, so it was not run in the bench's own ({e})", {})
    return CompileCheck(None, run.value)


def compile_here(raw: dict[str, Any]) -> dict[str, float]:
    """Child side: ``raw`` is an :class:`IsolatedRequest` as a dict; returns the contender's
    ``compile_s`` ("graph shape" -> seconds)."""
    import torch
    from escnet_runtime import contract as C

    from escnet import build_model, load_checkpoint
    from escnet_bench.contenders.torch_eager import TorchContender
    from escnet_bench.inputs import make_inputs
    from escnet_bench.reference import compute_reference

    request = IsolatedRequest(**{**raw, "points": [tuple(p) for p in raw["points"]]})
    torch.manual_seed(request.seed)
    if request.checkpoint:
        model = load_checkpoint(request.checkpoint, preset=request.preset)
    else:
        model = build_model(request.preset)
    model = model.eval()
    contender = TorchContender(request.backend, model, class_chunk=request.class_chunk)
    for classes, batch in request.points:
        inputs = make_inputs(classes, batch, request.seed)
        ref = compute_reference(model, inputs)
        for graph in (C.TEXT_ENCODER, C.IMAGE_ENCODER, C.DECODER):
            contender.graph_fn(graph, ref.inputs[graph])  # staging a compiled graph compiles and runs it once
        contender.set_vocabulary(inputs.names)
        contender.segment_fn(inputs.images)
    return contender.compile_s
