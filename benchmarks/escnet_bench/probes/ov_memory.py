"""OpenVINO's peak memory and time beside ONNX Runtime's, and what ``release_memory`` changes.

    python -m escnet_bench.probes.ov_memory ARTIFACTS [--classes 150] [--rounds 2]

Cases, each a fresh child process, alternating round by round: ``ort-cpu``, ``ov-cpu`` with
``release_memory="steps"`` (the default), ``"encoders"`` and ``"all"``. A child opens a ``Segmenter``,
embeds T class names, segments one 480x640 image once (compiles), then once more, timed. Printed
per case: the medians of the timed run's seconds and of the process's peak RSS (VmHWM), and the
medians of the per-round ratios to ``ort-cpu`` (ratios taken side by side survive a noisy machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, sys, time
from escnet_runtime import Segmenter
from escnet_bench.inputs import class_names, synthetic_images
from escnet_bench.memory import rss_peak_mib
art, backend, release, classes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
options = {"release_memory": release} if backend.startswith("ov") else {}
seg = Segmenter(art, backend=backend, disk_cache=False, **options)
seg.set_vocabulary(class_names(classes))
image = synthetic_images(1, 0)[0]
seg.segment(image)
start = time.perf_counter()
seg.segment(image)
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": rss_peak_mib()}))
"""

CASES = [("ort-cpu", "-"), ("ov-cpu", "steps"), ("ov-cpu", "encoders"), ("ov-cpu", "all")]


def _child(artifacts: str, backend: str, release: str, classes: int) -> dict[str, float]:
    cmd = [sys.executable, "-c", CHILD, artifacts, backend, release, str(classes)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"ov_memory: {backend} ({release}) failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifacts")
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.classes < 1 or args.rounds < 1:
        parser.error("--classes and --rounds must be at least 1")  # exit 2
    from escnet_runtime import ManifestError, load_manifest

    try:
        load_manifest(args.artifacts, verify=True)  # a user's mistake: one line, exit 2, before any child
    except ManifestError as e:
        print(f"ov_memory: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    runs: dict[tuple[str, str], list[dict[str, float]]] = {case: [] for case in CASES}
    for _ in range(args.rounds):
        for backend, release in CASES:
            runs[(backend, release)].append(_child(args.artifacts, backend, release, args.classes))
    base = runs[CASES[0]]
    print(f"{args.classes} classes, 480x640, {args.rounds} rounds; medians (ratios: per round, to ort-cpu)")
    print("| backend | release_memory | s | x ort time | peak MiB | x ort peak |\n|---|---|---|---|---|---|")
    for (backend, release), rows in runs.items():

        def med(key: str, rows=rows) -> float:
            return statistics.median(r[key] for r in rows)

        def ratio(key: str, rows=rows) -> float:
            return statistics.median(r[key] / b[key] for r, b in zip(rows, base, strict=True))

        print(f"| {backend} | {release} | {med('seconds'):.2f} | {ratio('seconds'):.2f} | "
              f"{med('peak_mib'):.0f} | {ratio('peak_mib'):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
