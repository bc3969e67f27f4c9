"""Label agreement of reduced-precision backends with an fp32 one, on all and on confident pixels.

    python -m escnet_bench.probes.precision_parity ARTIFACTS --images DIR --classes-file F
        [--backends ov-cpu,ov-cpu-bf16] [--reference ort-cpu] [--limit 20]

Every image of DIR (sorted, at most --limit) is segmented by the reference (fp32) backend and by
each backend; printed per backend: label agreement on all pixels, and on the pixels whose
reference top-2 class-score margin exceeds the gates' confident margin (0.05,
``escnet_export.quantize.gates.GateRule``), with how many pixels that is, the largest score
difference, and the label gate's verdict (>= 99.5 % on confident pixels; "not judged" when too
few pixels are confident, as on random weights). For the full gates (held-out mIoU too, every
backend and torch peer) see ``python -m escnet_bench.probes.gates``. A bad argument is one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from escnet_bench.options import RUNTIME_BACKENDS

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__)


def _names(classes_file: Path) -> list[str]:
    try:
        names = [line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        why = f"{classes_file}: cannot read it ({type(e).__name__})"
        raise typer.BadParameter(why, param_hint="'--classes-file'") from None
    if not names:
        raise typer.BadParameter(f"{classes_file}: no class names", param_hint="'--classes-file'")
    return names


def _backends(text: str, hint: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",")))
    unknown = [n for n in names if n not in RUNTIME_BACKENDS or n.endswith("-int8")]
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown backend {unknown[0] if unknown else text!r}; expected some of "
            f"{', '.join(n for n in RUNTIME_BACKENDS if not n.endswith('-int8'))}",
            param_hint=hint,
        )
    return names


def _images(folder: Path, limit: int) -> list[Path]:
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder}: no such folder", param_hint="'--images'")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)[:limit]
    if not files:
        raise typer.BadParameter(f"{folder}: no images ({', '.join(sorted(SUFFIXES))})", param_hint="'--images'")
    return files


@app.command()
def main(
    artifacts: Annotated[Path, typer.Argument(help="artifacts folder")],
    images: Annotated[Path, typer.Option(help="folder of images (searched recursively)")],
    classes_file: Annotated[Path, typer.Option(help="one class name per line")],
    backends: Annotated[str, typer.Option(help="backends to compare, comma-separated")] = "ov-cpu,ov-cpu-bf16",
    reference: Annotated[str, typer.Option(help="the fp32 backend")] = "ort-cpu",
    limit: Annotated[int, typer.Option(min=1, max=10000, help="images at most")] = 20,
) -> None:
    """Print the agreement table."""
    from escnet_export.quantize.gates import GateRule, top2_margin
    from escnet_runtime import BackendError, InputError, ManifestError, Segmenter
    from escnet_runtime.image_io import load_image

    chosen, ref_name = _backends(backends, "'--backends'"), _backends(reference, "'--reference'")[0]
    names, files, rule = _names(classes_file), _images(images, limit), GateRule()
    try:
        pictures = [load_image(p) for p in files]
        with Segmenter(artifacts, backend=ref_name, disk_cache=False) as ref_seg:
            ref_seg.set_vocabulary(names)
            refs = [ref_seg.segment(img, return_scores=True) for img in pictures]
        confident = [top2_margin(r.scores) > rule.confident_margin for r in refs]
        n_conf, n_all = sum(int(c.sum()) for c in confident), sum(c.size for c in confident)
        typer.echo(f"{len(pictures)} images from {images}, {len(names)} classes, reference {ref_name}")
        typer.echo(
            f"confident pixels (top-2 margin > {rule.confident_margin}): {n_conf} of {n_all} ({n_conf / n_all:.1%})"
        )
        typer.echo("| backend | agree (all) | agree (confident) | max score diff | label gate |")
        typer.echo("|---|---|---|---|---|")
        for backend in chosen:
            typer.echo(_row(backend, artifacts, names, pictures, refs, confident, n_conf, n_all, rule))
    except (BackendError, ManifestError, InputError) as e:
        raise typer.BadParameter(str(e), param_hint="'ARTIFACTS'") from None


def _row(backend, artifacts, names, pictures, refs, confident, n_conf, n_all, rule) -> str:
    from escnet_runtime import Segmenter

    with Segmenter(artifacts, backend=backend, disk_cache=False) as seg:
        seg.set_vocabulary(names)
        same_all = same_conf = 0
        worst = 0.0
        for img, ref, conf in zip(pictures, refs, confident, strict=True):
            got = seg.segment(img, return_scores=True)
            same = got.labels == ref.labels
            same_all += int(same.sum())
            same_conf += int(same[conf].sum())
            worst = max(worst, float(np.abs(got.scores - ref.scores).max()))
    judged = n_conf >= rule.min_confident_share * n_all and n_conf > 0
    verdict = ("pass" if same_conf / n_conf >= rule.min_agreement else "fail") if judged else "not judged"
    conf_text = f"{same_conf / n_conf:.4f}" if n_conf else "-"
    return f"| {backend} | {same_all / n_all:.4f} | {conf_text} | {worst:.2g} | {verdict} |"


if __name__ == "__main__":
    from escnet_runtime.cli_usage import run_app

    run_app(app, "python -m escnet_bench.probes.precision_parity")
