"""The accuracy gates for every reduced-precision backend and PyTorch peer, on your weights and images.

    python -m escnet_bench.probes.gates ARTIFACTS --data DIR [--checkpoint CKPT]
        [--backends torch-bf16,torch-compile-bf16,ov-cpu-bf16,ort-cpu-int8,ov-cpu-int8] [--held-out 20]
        [--cpp-lib build/cpp/libescnet.so]

ARTIFACTS: the fp32 folder (``escnet-export onnx --checkpoint CKPT``); the int8 backends run on
ARTIFACTS-int8 beside it (``escnet-export quantize --artifacts ARTIFACTS --out ARTIFACTS-int8``).
DIR: a data set in the custom layout (``classes.txt``, ``images/val``, ``annotations_detectron2/val``).
CKPT: the checkpoint the artifacts were exported from, for the torch peers (skipped without it).
The cpp-* backends run the C++ runtime's library (``--cpp-lib``, default build/cpp/libescnet.so).
The reference is the fp32 runtime (ONNX Runtime CPU on ARTIFACTS); the gates are
``escnet_export.quantize.gates``: held-out mIoU within 0.5 points of it, label agreement on
confident pixels (fp32 top-2 margin > 0.05) >= 99.5 %. Exit 1 when a backend fails a gate; a
backend this machine cannot run is listed as skipped. A bad argument is one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from escnet_bench.options import ALL_BACKENDS

DEFAULT_BACKENDS = "torch-bf16,torch-compile-bf16,ov-cpu-bf16,ort-cpu-int8,ov-cpu-int8"
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__)


def _backends(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",")))
    unknown = [n for n in names if n not in ALL_BACKENDS]
    if not names or unknown:
        found = f"unknown backend {unknown[0]!r}" if unknown else "no backend"
        raise typer.BadParameter(f"{found}; expected some of {', '.join(ALL_BACKENDS)}", param_hint="'--backends'")
    return names


def _open(name: str, artifacts: Path, checkpoint: Path | None, cpp_lib: Path | None) -> Any:
    """The contender called ``name``; ContenderUnavailable with the reason when it cannot run here."""
    from escnet_bench.contenders.base import ContenderUnavailable
    from escnet_bench.contenders.cpp import CppContender
    from escnet_bench.contenders.registry import SPECS
    from escnet_bench.contenders.runtime import RuntimeContender
    from escnet_bench.contenders.torch_eager import TorchContender

    if SPECS[name].family == "runtime":
        return RuntimeContender(name, artifacts, batch_size=1)
    if SPECS[name].family == "cpp":
        return CppContender(name, artifacts, cpp_lib)
    if checkpoint is None:
        raise ContenderUnavailable("no --checkpoint given (the torch peers run the checkpoint itself)")
    from escnet import load_checkpoint

    return TorchContender(name, load_checkpoint(checkpoint).eval())


def judge_all(
    artifacts: Path, data: Path, checkpoint: Path | None, names: list[str], held_out: int, cpp_lib: Path | None = None
) -> int:
    """Print the gate table; 1 when any backend fails a gate, else 0."""
    from escnet_export.quantize.gates import GateRule, gate_table, judge, overall, reference_of
    from escnet_runtime import Segmenter

    from escnet.data import open_dataset
    from escnet_bench.contenders.base import ContenderUnavailable

    dataset = open_dataset("synthetic-val", data, limit=held_out)
    samples = [dataset[i] for i in range(len(dataset))]
    vocab, rule = list(dataset.prompt_names), GateRule()
    with Segmenter(artifacts, backend="ort-cpu", disk_cache=False) as seg:
        seg.set_vocabulary(vocab)
        ref = reference_of(lambda im: _labels_scores(seg, im), samples, len(vocab), rule)
    rows, skipped = [], []
    for name in names:
        try:
            contender = _open(name, artifacts, checkpoint, cpp_lib)
        except ContenderUnavailable as e:
            skipped.append(f"{name}: skipped ({e})")
            continue
        try:
            contender.set_vocabulary(vocab)
            predict = lambda im, c=contender: c.segment_fn(np.array(im[None]))()[0]
            rows.append(judge(name, contender.spec.precision, predict, samples, ref, rule))
        finally:
            contender.close()
    typer.echo(gate_table(ref, rows, rule))
    for line in skipped:
        typer.echo(line)
    verdict = overall(rows)
    typer.echo(f"gates: {verdict}")
    return 1 if verdict == "fail" else 0


def _labels_scores(seg: Any, image: Any) -> tuple[Any, Any]:
    r = seg.segment(image, return_scores=True)
    return r.labels, r.scores


@app.command()
def main(
    artifacts: Annotated[Path, typer.Argument(help="fp32 artifacts folder")],
    data: Annotated[Path, typer.Option(help="data set: classes.txt, images/val, annotations_detectron2/val")],
    checkpoint: Annotated[Path | None, typer.Option(help="the checkpoint, for the torch peers")] = None,
    backends: Annotated[str, typer.Option(help="backends and peers to judge, comma-separated")] = DEFAULT_BACKENDS,
    held_out: Annotated[int, typer.Option(min=1, max=1000, help="held-out scenes at most")] = 20,
    cpp_lib: Annotated[Path | None, typer.Option(help="libescnet.so for the cpp-* backends")] = None,
) -> None:
    """Print the gate table."""
    from escnet_runtime import BackendError, InputError, ManifestError, load_manifest

    from escnet.data import DatasetError

    names = _backends(backends)
    try:
        load_manifest(artifacts)
    except ManifestError as e:
        raise typer.BadParameter(str(e), param_hint="'ARTIFACTS'") from None
    for path, flag in ((checkpoint, "--checkpoint"), (cpp_lib, "--cpp-lib")):
        if path is not None and not path.is_file():
            raise typer.BadParameter(f"{path}: no such file", param_hint=f"'{flag}'")
    try:
        code = judge_all(artifacts, data, checkpoint, names, held_out, cpp_lib)
    except DatasetError as e:
        raise typer.BadParameter(str(e), param_hint="'--data'") from None
    except (BackendError, ManifestError, InputError) as e:
        raise typer.BadParameter(str(e), param_hint="'ARTIFACTS'") from None
    raise typer.Exit(code)


if __name__ == "__main__":
    from escnet_runtime.cli_usage import run_app

    run_app(app, "python -m escnet_bench.probes.gates")
