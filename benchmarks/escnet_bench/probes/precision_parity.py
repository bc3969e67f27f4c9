"""Label agreement of reduced-precision backends with an fp32 one, on all and on confident pixels.

    python -m escnet_bench.probes.precision_parity ARTIFACTS --images DIR --classes-file F
        [--backends ov-cpu,ov-cpu-bf16] [--reference ort-cpu] [--limit 20]

Every image of DIR (sorted, at most --limit) is segmented by the reference (fp32) backend and by
each backend; printed per backend: label agreement on all pixels, and on the pixels whose
reference top-2 class-score margin exceeds ``parity.CONFIDENT_MARGIN`` (0.05), with how many
pixels that is, plus the largest score difference. Random weights leave classes nearly tied, so
the confident-pixel figure is the one that measures the engine; run it on trained weights too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from escnet_runtime import Segmenter
from escnet_runtime.image_io import load_image

from escnet_bench.parity import CONFIDENT_MARGIN

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifacts")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--classes-file", type=Path, required=True)
    parser.add_argument("--backends", default="ov-cpu,ov-cpu-bf16")
    parser.add_argument("--reference", default="ort-cpu")
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    names = [line.strip() for line in args.classes_file.read_text().splitlines() if line.strip()]
    files = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in SUFFIXES)[: args.limit]
    images = [load_image(p) for p in files]
    with Segmenter(args.artifacts, backend=args.reference, disk_cache=False) as ref_seg:
        ref_seg.set_vocabulary(names)
        refs = [ref_seg.segment(img, return_scores=True) for img in images]
    top2 = [np.sort(r.scores, axis=0)[-2:] for r in refs]
    confident = [(t[1] - t[0]) > CONFIDENT_MARGIN for t in top2]
    n_conf, n_all = sum(int(c.sum()) for c in confident), sum(c.size for c in confident)
    print(f"{len(images)} images from {args.images}, {len(names)} classes, reference {args.reference}")
    print(f"confident pixels (top-2 margin > {CONFIDENT_MARGIN}): {n_conf} of {n_all} ({n_conf / n_all:.1%})")
    print("| backend | agree (all) | agree (confident) | max score diff |")
    print("|---|---|---|---|")
    for backend in args.backends.split(","):
        with Segmenter(args.artifacts, backend=backend, disk_cache=False) as seg:
            seg.set_vocabulary(names)
            same_all = same_conf = 0
            worst = 0.0
            for img, ref, conf in zip(images, refs, confident, strict=True):
                got = seg.segment(img, return_scores=True)
                same = got.labels == ref.labels
                same_all += int(same.sum())
                same_conf += int(same[conf].sum())
                worst = max(worst, float(np.abs(got.scores - ref.scores).max()))
        conf_text = f"{same_conf / n_conf:.4f}" if n_conf else "-"
        print(f"| {backend} | {same_all / n_all:.4f} | {conf_text} | {worst:.2g} |", flush=True)


if __name__ == "__main__":
    main()
