"""``escnet-export check``: will these graphs build in TensorRT, and how risky is fp16? No GPU needed.

Reads an artifacts folder (its manifest when there is one; otherwise every ``*.onnx`` in it),
runs the static checks of ``graph_checks`` on each graph and, with a manifest, the fp16 risk
report of ``fp16_risk`` on a sample chained through the three graphs (fp32 outputs of the
encoders feed the decoder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from escnet_runtime.baked import is_baked, load_baked_manifest
from escnet_runtime.contract import DECODER, IMAGE_ENCODER, LOGITS, TEXT_ENCODER
from escnet_runtime.manifest import Manifest, ManifestError, load_manifest
from escnet_runtime.tokenizer import ClipTokenizer

from escnet_export.checks.fp16_risk import Fp16Risk, fp16_risk
from escnet_export.checks.graph_rules import GraphCheck, check_graph
from escnet_export.errors import ExportError
from escnet_export.onnx.wrappers import SAMPLE_CLASS_NAMES
from escnet_export.trt.ops import OperatorList, trt_operator_list

CHECK_CLASSES = 8  # classes in the fp16 sample


@dataclass
class CheckReport:
    folder: Path
    source: str  # the operator list's source
    graphs: list[GraphCheck]
    fp16: list[Fp16Risk] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not any(g.errors for g in self.graphs)


def run_check(folder: Path, fp16: bool = True) -> CheckReport:
    if not folder.is_dir():
        raise ExportError(f"{folder}: no such artifacts folder")
    ops = trt_operator_list()
    if is_baked(folder):
        return _check_baked(folder, ops)
    manifest: Manifest | None = None
    try:
        manifest = load_manifest(folder)
    except ManifestError as e:
        if (folder / "manifest.json").exists():
            raise ExportError(str(e)) from None
    if manifest is not None:
        paths = {name: folder / g.file for name, g in manifest.graphs.items()}
    else:
        paths = {p.stem: p for p in sorted(folder.glob("*.onnx"))}
        if not paths:
            raise ExportError(f"{folder}: no manifest.json and no .onnx files")
    report = CheckReport(folder, ops.source, [])
    models = {}
    for name, path in paths.items():
        try:
            models[name] = onnx.load(str(path))
        except Exception as e:
            raise ExportError(f"{path}: not a readable ONNX file ({str(e).splitlines()[0][:200]})") from None
        report.graphs.append(check_graph(models[name], name, path, ops))
    if manifest is None:
        report.notes.append("no manifest.json: static checks only (the fp16 report needs the contract)")
    elif fp16:
        report.fp16 = fp16_reports(folder, manifest, models)
    return report


def _check_baked(folder: Path, ops: OperatorList) -> CheckReport:
    """A baked-vocabulary folder (``escnet-export bake``): its manifest and hashes, then the static checks."""
    try:
        baked = load_baked_manifest(folder)
    except ManifestError as e:
        raise ExportError(str(e)) from None
    path = folder / baked.graph.file
    report = CheckReport(folder, ops.source, [check_graph(onnx.load(str(path)), baked.graph.name, path, ops)])
    classes = len(baked.class_names)
    report.notes.append(f"baked vocabulary of {classes} classes; fp16 report: run it on the source artifacts")
    return report


def sample_feeds(folder: Path, manifest: Manifest, batch: int = 1, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Encoder inputs: a random CLIP-normalised image, real class names through the templates."""
    rng = np.random.default_rng(seed)
    image_spec = manifest.graphs[IMAGE_ENCODER].inputs[0]
    size = manifest.preprocess.image_size
    tokenizer = ClipTokenizer.from_spec(folder, manifest.tokenizer)
    names = [SAMPLE_CLASS_NAMES[i % len(SAMPLE_CLASS_NAMES)] for i in range(CHECK_CLASSES)]
    texts = [t.format(n) for n in names for t in manifest.templates]
    return {
        IMAGE_ENCODER: {image_spec.name: rng.standard_normal((batch, 3, size, size)).astype(np.float32)},
        TEXT_ENCODER: {manifest.graphs[TEXT_ENCODER].inputs[0].name: tokenizer(texts).astype(np.int64)},
    }


def fp16_reports(folder: Path, manifest: Manifest, models: dict[str, onnx.ModelProto]) -> list[Fp16Risk]:
    feeds = sample_feeds(folder, manifest)
    out = []
    img, img_ref = fp16_risk(IMAGE_ENCODER, models[IMAGE_ENCODER], feeds[IMAGE_ENCODER], set())
    txt, txt_ref = fp16_risk(TEXT_ENCODER, models[TEXT_ENCODER], feeds[TEXT_ENCODER], set())
    out += [img, txt]
    spec = manifest.graphs[DECODER]
    text = txt_ref[0].reshape(CHECK_CLASSES, len(manifest.templates), -1)
    dec_feeds = dict(zip(spec.input_names, [*img_ref, text], strict=True))
    dec, _ = fp16_risk(DECODER, models[DECODER], dec_feeds, {LOGITS})
    out.append(dec)
    return out
