"""``escnet-export quantize``: fp32 artifacts -> int8 artifacts on the same contract, all or nothing.

1. Calibration inputs: the calibration images segmented by the fp32 artifacts' own graphs on
   ONNX Runtime (``recorder``); the fp32 runtime's labels on the held-out scenes (``gates``).
2. In a staging folder beside OUT (``publish.staged_export``): the image encoder, the decoder and
   every decoder step quantised by the engine (``engines``), the float32 islands left alone
   (``islands``); every other file copied from the fp32 folder as verified.
3. Gates on the staged folder, for each runtime backend that opens it (ort-cpu, ov-cpu). NNCF's
   SmoothQuant is kept only where it helps: when the gates fail with it, the graphs are quantised
   again without it and judged again. On a failure: the gate table, nothing written
   (:class:`GatesFailed`). Passed: the text encoder is quantised too and kept only if the gates
   still hold. Not judged (no confident pixels, e.g.
   random weights): one warning, the text encoder stays fp32, the folder is written.
4. The manifest (sha256 of every file; ``precision`` int8; ``extra``: engine, calibration set size and
   sha256, islands, gate rows and verdict), then one swap into OUT.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from escnet_runtime import Segmenter
from escnet_runtime.contract import IMAGE_ENCODER, TEXT_ENCODER
from escnet_runtime.errors import BackendError, InputError
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest

from escnet_export.errors import ExportError
from escnet_export.publish import publish, staged_export
from escnet_export.quantize import folder as F
from escnet_export.quantize.data import GateData, read_gate_data, synthetic_gate_data
from escnet_export.quantize.engines import EngineSettings, quantize_graph
from escnet_export.quantize.gates import GateRow, Reference, gate_table, judge, overall, reference_of
from escnet_export.quantize.islands import f32_islands
from escnet_export.quantize.options import QuantizeOptions, validate
from escnet_export.quantize.recorder import record_feeds

Step = Callable[[str], None]
FP32_BACKEND = "ort-cpu"


class GatesFailed(ExportError):
    """The int8 graphs fail a gate; ``table`` is what the user sees, nothing was written."""

    def __init__(self, message: str, table: str) -> None:
        super().__init__(message)
        self.table = table


@dataclass
class QuantizeResult:
    verdict: str
    table: str
    graphs: dict[str, str]  # graph -> "int8" / "fp32"
    bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)


def judge_backends(engine: str) -> tuple[str, ...]:
    """The runtime backends the int8 folder is judged on: the engine's own first."""
    own = "ov-cpu" if engine == "openvino" else "ort-cpu"
    others = [b for b in ("ov-cpu", "ort-cpu") if b != own and (b != "ov-cpu" or find_spec("openvino"))]
    return (own, *others)


@dataclass
class _Job:
    """One quantisation: its inputs, the staging folder, and what has been decided so far."""

    opts: QuantizeOptions
    fp32: Manifest
    data: GateData
    ref: Reference
    feeds: dict[str, list]
    staging: Path
    step: Step
    graphs: dict[str, str] = field(default_factory=dict)  # graph -> "int8" / "fp32 ..."
    islands: dict[str, list] = field(default_factory=dict)  # graph -> its float32 island nodes
    unopened: dict[str, str] = field(default_factory=dict)  # backend -> why it cannot run the int8 folder


def _segmenter_rows(job: _Job) -> list[GateRow]:
    """The gate rows of every backend that opens the staged folder. The engine's own backend must
    open it; another one that cannot (an engine's bug with the other's QDQ) is recorded instead."""
    rows = []
    own, *others = judge_backends(job.opts.engine)
    for backend in (own, *[b for b in others if b not in job.unopened]):
        try:
            with Segmenter(job.staging, backend=backend, disk_cache=False) as seg:
                seg.set_vocabulary(job.data.class_names)
                predict = lambda im, s=seg: s.segment(im).labels
                rows.append(judge(backend, "int8", predict, job.data.held_out, job.ref, job.opts.rule))
        except (BackendError, ManifestError, InputError) as e:
            if backend == own:
                raise ExportError(f"{backend} cannot run the int8 folder: {e}") from None
            job.unopened[backend] = str(e)
    return rows


def _reference(opts: QuantizeOptions, data: GateData) -> Reference:
    with Segmenter(opts.artifacts, backend=FP32_BACKEND, disk_cache=False) as seg:
        seg.set_vocabulary(data.class_names)

        def segment(image: Any) -> tuple[Any, Any]:
            r = seg.segment(image, return_scores=True)
            return r.labels, r.scores

        return reference_of(segment, data.held_out, len(data.class_names), opts.rule)


def _quantize_into(job: _Job, graph: str) -> None:
    model = F.fp32_graph(job.opts.artifacts, job.fp32, graph)
    islands = f32_islands(model)
    job.islands[graph] = [{"node": i.node, "op": i.op_type, "why": i.reason} for i in islands]
    settings = EngineSettings(job.opts.engine, job.opts.smooth_quant)
    try:
        q = quantize_graph(model, job.feeds.get(graph, []), [i.node for i in islands], settings)
    except ExportError as e:
        raise ExportError(f"{graph}: {e}") from None
    F.save_graph(q, job.staging / job.fp32.graphs[graph].file)
    job.graphs[graph] = "int8"


def _record(job: _Job, rows: list[GateRow], verdict: str) -> dict:
    opts, data = job.opts, job.data
    return {
        "quantization": {
            "engine": opts.engine,
            **EngineSettings(opts.engine, opts.smooth_quant).describe(),
            "graphs": job.graphs,
            "f32_islands": job.islands,
            "fp32_artifacts_manifest_sha256": _manifest_sha256(opts.artifacts),
            "backends_that_cannot_run_it": job.unopened,
        },
        "calibration": {"size": len(data.calibration), "sha256": data.sha256, "source": data.source},
        "gates": verdict,
        "gate_rows": [r.to_dict() for r in rows],
        "gate_rule": {
            "miou_tolerance": opts.rule.miou_tolerance,
            "min_agreement": opts.rule.min_agreement,
            "confident_margin": opts.rule.confident_margin,
            "held_out": len(data.held_out),
        },
    }


def _manifest_sha256(folder: Path) -> str:
    from escnet_runtime.contract import MANIFEST_FILE
    from escnet_runtime.fileio import sha256_file

    return sha256_file(folder / MANIFEST_FILE)


def run_quantize(opts: QuantizeOptions, step: Step = lambda _n: None) -> QuantizeResult:
    """Write the int8 folder OUT, or raise ExportError / GatesFailed with OUT untouched."""
    validate(opts)
    start = time.perf_counter()
    try:
        fp32 = load_manifest(opts.artifacts)
    except ManifestError as e:
        raise ExportError(str(e)) from None
    if fp32.weights_precision() != "fp32":
        raise ExportError(
            f"--artifacts {opts.artifacts}: holds {fp32.weights_precision()} graphs (manifest precision); "
            "quantize reads the fp32 artifacts escnet-export onnx wrote"
        )
    step("reading the calibration and held-out images")
    if opts.synthetic is not None:
        with synthetic_gate_data(opts.synthetic, opts.held_out) as data:
            return _run(opts, fp32, data, step, start)
    assert opts.calibration is not None
    return _run(opts, fp32, read_gate_data(opts.calibration, opts.calibration_size, opts.held_out), step, start)


def _run(opts: QuantizeOptions, fp32: Manifest, data: GateData, step: Step, start: float) -> QuantizeResult:
    step(f"recording calibration inputs ({len(data.calibration)} images, fp32 graphs)")
    feeds = record_feeds(opts.artifacts, data.class_names, data.calibration, limit=len(data.calibration))
    step(f"fp32 runtime on {len(data.held_out)} held-out scenes")
    ref = _reference(opts, data)
    targets = [g for g in fp32.graphs if g != TEXT_ENCODER and g in feeds]
    warnings: list[str] = []
    with staged_export(opts.out, note=warnings.append) as run:
        job = _Job(opts, fp32, data, ref, feeds, run.staging, step, {g: "fp32" for g in fp32.graphs})
        F.copy_listed(opts.artifacts, fp32, job.staging, {fp32.graphs[g].file for g in targets})
        rows = _quantize_and_judge(job, targets)
        if overall(rows) == "fail" and opts.engine == "openvino" and opts.smooth_quant:
            job.opts = dataclasses.replace(opts, smooth_quant=False)  # SmoothQuant only where it helps
            step("the gates failed with SmoothQuant: quantising again without it")
            rows = _quantize_and_judge(job, targets)
        verdict = overall(rows)
        if verdict == "fail":
            raise GatesFailed(_failure_line(rows, opts.out), gate_table(ref, rows, opts.rule))
        if verdict == "pass" and TEXT_ENCODER in feeds:
            rows = _try_text_encoder(job, rows)
        if verdict == "not judged":
            warnings.append(f"gates: not judged: {rows[0].why}; the text encoder stays fp32")
        warnings += [f"{b} cannot run these int8 graphs: {why}" for b, why in job.unopened.items()]
        extra = _record(job, rows, verdict)
        files = sorted(F.int8_manifest(fp32, job.staging, extra).files)
        step("publishing")
        publish(run, files, lambda where: F.write_staged_manifest(fp32, where, extra))
    size = sum((opts.out / f).stat().st_size for f in files)
    table = gate_table(ref, rows, opts.rule)
    return QuantizeResult(verdict, table, job.graphs, size, time.perf_counter() - start, warnings)


def _quantize_and_judge(job: _Job, targets: list[str]) -> list[GateRow]:
    """Every target graph quantised into the staging folder (image encoder first), then the gates."""
    for g in [IMAGE_ENCODER, *[t for t in targets if t != IMAGE_ENCODER]]:
        if g in targets:
            job.step(f"quantising {g} ({job.opts.engine}{'' if job.opts.smooth_quant else ', no SmoothQuant'})")
            _quantize_into(job, g)
    return _judge(job)


def _judge(job: _Job) -> list[GateRow]:
    F.write_staged_manifest(job.fp32, job.staging, _record(job, [], "not judged"))
    job.step(f"gates on {len(job.data.held_out)} held-out scenes ({', '.join(judge_backends(job.opts.engine))})")
    return _segmenter_rows(job)


def _try_text_encoder(job: _Job, rows: list[GateRow]) -> list[GateRow]:
    """Quantise the text encoder too; keep it only if every gate still passes."""
    job.step(f"quantising {TEXT_ENCODER} ({job.opts.engine})")
    _quantize_into(job, TEXT_ENCODER)
    with_text = _judge(job)
    if overall(with_text) == "pass":
        return with_text
    F.restore_fp32(job.opts.artifacts, job.fp32, job.staging, TEXT_ENCODER)
    job.graphs[TEXT_ENCODER] = "fp32 (int8 failed the gates)"
    job.islands.pop(TEXT_ENCODER, None)
    return rows


def _failure_line(rows: list[GateRow], out: Path) -> str:
    failed = [r for r in rows if r.verdict == "fail"]
    return (
        f"int8 fails the gates on {', '.join(r.backend for r in failed)} ({failed[0].why}); "
        f"nothing written, {out} left as it was"
    )
