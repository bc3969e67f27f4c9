"""What OpenVINO's compiled-model cache saves when a new process starts, and each backend's peak RSS.

    python -m escnet_bench.probes.ov_startup ARTIFACTS [--backends ov-cpu,ov-cpu-bf16,ort-cpu] [--classes 150]

Per backend, fresh child processes (one at a time) each open a ``Segmenter``, embed a vocabulary
of T classes and segment one 480x640 image: first with an empty compiled-model cache, then again
with the cache the first one filled. Printed per run: seconds to open + embed (graph loading and
compiling, text encoder), seconds for the first image (the decoder and image encoder compile on
first use), the process's peak RSS (VmHWM), and the cache folder's size. ORT rows have no cache:
they are the yardstick for start time and memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from escnet_runtime import Segmenter
from escnet_bench.inputs import class_names, synthetic_images
from escnet_bench.memory import rss_peak_mib
art, backend, classes, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
opts = {"model_cache_dir": cache} if backend.startswith("ov-") else {}
t1 = time.perf_counter()
seg = Segmenter(art, backend=backend, disk_cache=False, **opts).set_vocabulary(class_names(classes))
t2 = time.perf_counter()
seg.segment(synthetic_images(1, 0)[0])
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "open_embed_s": t2 - t1, "first_image_s": t3 - t2, "peak_mib": rss_peak_mib()}))
"""


def _child(artifacts: str, backend: str, classes: int, cache: Path) -> dict[str, float]:
    cmd = [sys.executable, "-c", CHILD, artifacts, backend, str(classes), str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{backend}: child failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _size_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifacts")
    parser.add_argument("--backends", default="ort-cpu,ov-cpu,ov-cpu-bf16")
    parser.add_argument("--classes", type=int, default=150)
    args = parser.parse_args()
    print(f"T={args.classes}, one 480x640 image, fresh process per row; times in s, memory in MiB")
    print("| backend | cache | open + embed | first image | total | peak RSS | cache MiB |")
    print("|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="escnet-ov-cache-") as tmp:
            cache = Path(tmp)
            runs = ("cold", "warm") if backend.startswith("ov-") else ("-",)
            for state in runs:
                t = time.perf_counter()
                r = _child(args.artifacts, backend, args.classes, cache)
                total = time.perf_counter() - t
                size = f"{_size_mib(cache):.0f}" if state != "-" else "-"
                print(
                    f"| {backend} | {state} | {r['open_embed_s']:.2f} | {r['first_image_s']:.2f} | {total:.2f} "
                    f"| {r['peak_mib']:.0f} | {size} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
