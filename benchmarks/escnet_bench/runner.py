"""The benchmark run: every requested backend, in turn, on the same inputs, against one reference.

Order: measure the device's peak matmul; compute the PyTorch fp32 reference for every
(classes, batch) point; then, backend by backend (only one loaded at a time besides the
reference model), open it (or record why it is skipped), and for every point time the text
pipeline cold and warm, each graph, and the end-to-end pipeline (with its peak memory), and
compare every output with the reference. A backend that fails mid-run is recorded as failed with
its error and the run goes on; a ``torch.compile`` contender first compiles in a fresh process
(:mod:`escnet_bench.compile_check`), so that a crash of inductor's native code is such a failure
too, not the end of the run.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from escnet_runtime import contract as C
from escnet_runtime.progress import StepProgress

from escnet import ESCNet
from escnet_bench.artifacts import reference_provenance, weights_source
from escnet_bench.compile_check import CompileCheck, compile_in_child
from escnet_bench.contenders.base import Contender, ContenderUnavailable
from escnet_bench.contenders.registry import contender_spec, open_contender
from escnet_bench.contenders.torch_eager import COMPILED
from escnet_bench.environment import environment, load_average
from escnet_bench.fits import scaling_fits
from escnet_bench.inputs import class_names, make_inputs
from escnet_bench.isolated import METHOD as ISOLATED_METHOD
from escnet_bench.isolated import IsolatedRequest, measure_isolated
from escnet_bench.memory import MemoryProbe, current_rss_mib, release_free_memory
from escnet_bench.options import AUTO_BUDGET_S, AUTO_MAX_ITERS, AUTO_MIN_ITERS, BenchOptions
from escnet_bench.parity import parity_gate, task_parity, tensor_parity
from escnet_bench.peak import PeakMatmul, measure_peak_matmul
from escnet_bench.reference import ReferencePoint, compute_reference
from escnet_bench.results import BackendRecord, BenchResult, MemoryRecord, ParityRecord, TaskRecord, TimingRecord
from escnet_bench.stats import summarise
from escnet_bench.timing import time_runs

GRAPHS = (C.TEXT_ENCODER, C.IMAGE_ENCODER, C.DECODER)
STEPS_PER_POINT = 6  # text cold, text warm, three graphs, end to end

METHODS = {
    "timing": "warm-up runs untimed, then timed runs (--iters auto: 2 to 10, stopping once they add up to 5 s); "
    "CPU: perf_counter after the backend's sync; GPU: CUDA events around each run, device synchronised. Median, "
    "p90, p99 over the timed runs (each row says how many).",
    "inputs": "seeded synthetic 480x640 uint8 images; the first T ADE20K-847 class names ('object i' beyond 847); "
    "the same arrays for every backend. "
    "Each graph gets the PyTorch reference's inputs (e.g. the decoder gets the reference's image features).",
    "end_to_end": "uint8 images -> labels at the image size with the vocabulary already embedded (pre-processing, "
    "image encoder, decoder, upsampling, arg-max).",
    "text": "text_cold: class names -> embeddings with an empty text-embedding cache on every run; text_warm: the "
    "same with the vocabulary cached (backends with a cache only).",
    "parity": "against PyTorch fp32 eager on the CPU: max-abs, mean-abs, cosine and polygraphy's SimpleCompareFunc "
    "per graph output; arg-max agreement and mIoU (PyTorch's labels as ground truth) per label map.",
    "flops": "torch.utils.flop_counter during the reference forward passes (2 FLOPs per multiply-add), "
    "as escnet.flops.graph_costs counts them; end_to_end = image encoder + decoder.",
    "utilisation": "achieved GFLOP/s (GFLOPs / median) over the device's measured peak matmul GFLOP/s in the "
    "backend's precision (peak_dtype: fp32, or bf16 for a bf16 backend, whose CPU peak is measured beside fp32's).",
}


@dataclass
class _Context:
    opts: BenchOptions
    model: ESCNet
    references: dict[tuple[int, int], ReferencePoint]
    peaks: dict[tuple[str, str], PeakMatmul]
    result: BenchResult
    progress: StepProgress  # where the run reports its steps: start(total), then step(next) after each


def _peak_for(ctx: _Context, device: str, precision: str) -> PeakMatmul:
    key = (device, precision)
    if key not in ctx.peaks:
        ctx.peaks[key] = measure_peak_matmul(*key)
        ctx.result.peaks.append(ctx.peaks[key].to_dict())
    return ctx.peaks[key]


def _timed(
    ctx: _Context,
    contender: Contender,
    stage: str,
    fn: Callable[[], object],
    point: tuple[int, int],
    items: int,
    unit: str,
    gflops: float | None,
    before: Callable[[], None] | None = None,
) -> object:
    auto = ctx.opts.iters is None
    iters = AUTO_MAX_ITERS if auto else ctx.opts.iters
    budget = AUTO_BUDGET_S if auto else None
    sync, events = contender.sync, contender.uses_cuda_events
    runs = time_runs(fn, ctx.opts.warmup, iters, sync, events, before, budget, AUTO_MIN_ITERS)
    stats = summarise(runs.seconds, ctx.opts.warmup, items, unit)
    achieved = util = peak_dtype = None
    if gflops is not None and stats.median_ms > 0:
        achieved = gflops / (stats.median_ms / 1e3)
        peak = _peak_for(ctx, contender.spec.device, contender.spec.precision)
        util, peak_dtype = 100.0 * achieved / peak.gflops_per_s, peak.dtype
    first = runs.first_call_s * 1e3 if runs.first_call_s is not None else None
    ctx.result.timings.append(
        TimingRecord(contender.spec.name, point[0], point[1], stage, stats, first, gflops, achieved, util, peak_dtype)
    )
    return runs.last_output


def _measure_point(ctx: _Context, contender: Contender, point: tuple[int, int]) -> None:
    classes, batch = point
    ref = ctx.references[point]
    inputs = make_inputs(classes, batch, ctx.opts.seed)
    name, precision = contender.spec.name, contender.spec.precision
    ctx.progress.step(f"{name}: T={classes} B={batch} text")
    for cache in ("cold", "warm", "warm_disk"):
        run = contender.vocabulary_fn(inputs.names, cache)
        if run is not None:
            gflops = ref.gflops[C.TEXT_ENCODER] if cache == "cold" else None
            _timed(ctx, contender, f"text_{cache}", run.fn, point, classes, "classes", gflops, run.before)
    ctx.progress.step(f"{name}: T={classes} B={batch} graphs")
    for graph in GRAPHS:
        if not contender.separate_graphs:
            ctx.progress.step(f"{name}: T={classes} B={batch} {graph} not callable alone")
            continue
        items, unit = (classes, "classes") if graph == C.TEXT_ENCODER else (batch, "images")
        raw = _timed(
            ctx, contender, graph, contender.graph_fn(graph, ref.inputs[graph]), point, items, unit, ref.gflops[graph]
        )
        outputs = contender.graph_outputs(graph, raw)
        for out_name, expected in ref.outputs[graph].items():
            parity = tensor_parity(out_name, expected, outputs[out_name], precision)
            ctx.result.parity.append(ParityRecord(name, classes, batch, graph, precision, parity))
        ctx.progress.step(f"{name}: T={classes} B={batch} {graph} done")
    contender.set_vocabulary(inputs.names)
    e2e_gflops = ref.gflops[C.IMAGE_ENCODER] + ref.gflops[C.DECODER]
    with MemoryProbe(contender.memory_device) as probe:
        labels = _timed(
            ctx, contender, "end_to_end", contender.segment_fn(inputs.images), point, batch, "images", e2e_gflops
        )
    assert probe.reading is not None
    ctx.result.memory.append(MemoryRecord(name, classes, batch, "end_to_end", probe.reading))
    task = task_parity(ref.labels, labels, ref.margins)
    worst = max(
        (p.tensor.max_abs for p in ctx.result.parity if (p.backend, p.classes, p.batch) == (name, *point)), default=None
    )
    gate = parity_gate(precision, worst, task, graphs_judged=contender.separate_graphs)
    ctx.result.task_parity.append(TaskRecord(name, classes, batch, task, gate))
    ctx.progress.step(f"{name}: T={classes} B={batch} done")


def _run_contender(ctx: _Context, name: str, points: list[tuple[int, int]]) -> None:
    spec = contender_spec(name)
    record = BackendRecord(spec.name, spec.family, spec.device, spec.precision, spec.description, status="ok")
    ctx.result.backends.append(record)
    ctx.progress.step(f"{name}: loading")
    release_free_memory()
    rss0, t0 = current_rss_mib(), time.perf_counter()
    try:
        contender = open_contender(name, ctx.model, ctx.opts)
    except Exception as e:  # unavailable here: skipped; broken: failed; either way the run goes on
        skipped = isinstance(e, ContenderUnavailable)
        record.status = "skipped" if skipped else "failed"
        record.reason = str(e) if skipped else f"{type(e).__name__}: {e}"
        _steps_not_run(ctx, record, points)
        return
    check = _compile_check(ctx, name, points)
    if check is not None and check.failure is not None:
        contender.close()
        record.status, record.reason = "failed", check.failure
        _steps_not_run(ctx, record, points)
        return
    record.precision = contender.spec.precision  # e.g. TensorRT engines built with --fp16
    record.load_s = time.perf_counter() - t0
    rss1 = current_rss_mib()
    record.load_rss_mib = rss1 - rss0 if rss0 is not None and rss1 is not None else None
    record.details = contender.details()
    if check is not None:
        record.details["compile_s_fresh_process"] = check.compile_s  # cold caches: what a user meets first
    try:
        for point in points:
            _measure_point(ctx, contender, point)
    except Exception as e:  # a failing backend is a result, not the end of the run
        record.status, record.reason = "failed", f"{type(e).__name__}: {e}"
    finally:
        contender.close()
    ctx.progress.step(f"{name}: peak RSS in a fresh process")
    if record.status == "ok" and spec.device == "cpu" and ctx.opts.isolated_memory:
        _isolated_memory(ctx, record, points)


def _steps_not_run(ctx: _Context, record: BackendRecord, points: list[tuple[int, int]]) -> None:
    """The progress steps of a backend that will not run, counted as done."""
    for _ in range(len(points) * STEPS_PER_POINT + 1):
        ctx.progress.step(f"{record.name}: {record.status}")


def _compile_check(ctx: _Context, name: str, points: list[tuple[int, int]]) -> CompileCheck | None:
    """A compiled CPU contender compiles in a fresh process first (inductor's native code can kill
    the process it runs in); None for every other contender."""
    if name not in COMPILED or contender_spec(name).device != "cpu":
        return None
    ctx.progress.note(f"{name}: compiling in a fresh process first")
    return compile_in_child(_request(ctx, name, points))


def _request(ctx: _Context, backend: str, points: list[tuple[int, int]]) -> IsolatedRequest:
    """What a fresh process needs to open ``backend`` the way this run does."""
    weights = weights_source(ctx.opts)
    return IsolatedRequest(
        backend=backend,
        preset=ctx.opts.preset,
        artifacts=str(ctx.opts.artifacts),
        checkpoint=str(weights) if weights is not None else None,
        seed=ctx.opts.seed,
        batch_size=max(ctx.opts.batch),
        points=points,
        names={str(t): class_names(t) for t in {t for t, _ in points}},
        class_chunk=ctx.opts.class_chunk,
        cpp_lib=str(ctx.opts.cpp_lib) if ctx.opts.cpp_lib else None,
    )


def _isolated_memory(ctx: _Context, record: BackendRecord, points: list[tuple[int, int]]) -> None:
    """Peak RSS of a fresh process per backend; attached to the backend's memory rows."""
    result = measure_isolated(_request(ctx, record.name, points))
    record.details["fresh_process"] = {k: v for k, v in asdict(result).items() if k != "peaks_mib"}
    for m in ctx.result.memory:
        if m.backend == record.name:
            m.process_peak_rss_mib = result.peaks_mib.get(f"{m.classes},{m.batch}")


def run_benchmark(opts: BenchOptions, model: ESCNet, progress: StepProgress | None = None) -> BenchResult:
    """Run every backend of ``opts`` on every (classes, batch) point; return the results.

    ``progress``: where the steps are reported (None: nowhere)."""
    progress = progress or StepProgress("escnet-bench", enabled=False)
    started = time.perf_counter()
    points = [(t, b) for t in opts.classes for b in opts.batch]
    progress.start(1 + len(points) + len(opts.backends) * (2 + len(points) * STEPS_PER_POINT))
    result = BenchResult(
        created_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        options=opts.to_dict(),
        environment=environment(),
        methods={**METHODS, "memory": MemoryProbe.METHOD_DOC, "process_memory": ISOLATED_METHOD},
        peaks=[],
        weights=reference_provenance(opts),
    )
    ctx = _Context(opts, model, {}, {}, result, progress)
    progress.step("measuring peak matmul GFLOP/s")
    _peak_for(ctx, "cpu", "fp32")
    _peak_for(ctx, "cpu", "bf16")  # beside fp32: the ceiling of bf16 contenders
    for point in points:
        progress.step(f"reference: T={point[0]} B={point[1]}")
        ctx.references[point] = compute_reference(model, make_inputs(point[0], point[1], opts.seed))
    for name in opts.backends:
        _run_contender(ctx, name, points)
    result.fits = scaling_fits(result, opts.predict_classes)
    result.environment["load_average_end"] = load_average()
    result.duration_s = time.perf_counter() - started
    return result
