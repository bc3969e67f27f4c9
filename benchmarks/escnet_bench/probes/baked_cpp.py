"""Peak memory and time per image: the baked graph and the C++ runtime beside the Python runtime.

``python -m escnet_bench.probes.baked_cpp --artifacts A --image I --classes-file F --counts 20,150,847
[--baked 20=DIR,...] [--cpp-tool PATH] [--repeat 3]``

Every figure comes from a fresh process (peak RSS is the child's ``ru_maxrss``), one after
another on the same image, so ratios hold on a noisy machine better than absolute numbers:
- python: ``Segmenter(ort-cpu)`` on the artifacts, class embeddings read from a text cache
  filled beforehand (the text encoder's own peak is not part of segmenting);
- python_ov (with ``--cpp-tool``): ``Segmenter(ov-cpu)``, the C++ runtime's backend (OpenVINO CPU
  f32), so C++ and Python are compared on the same engine;
- baked: ``segmenter.onnx`` in an ONNX Runtime CPU session (default options);
- cpp: ``escnet-segment-cpp`` (OpenVINO C++ API, f32) on the artifacts and a vocabulary file,
  and on the baked folder.
Times are medians of ``--repeat`` calls after one warm-up call, inside each process.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import json, resource, statistics, sys, time
import numpy as np
from PIL import Image
kind, target, image_path, names_file, cache, repeat = sys.argv[1:7]
image = np.asarray(Image.open(image_path).convert("RGB"))
names = [l.strip() for l in open(names_file, encoding="utf-8") if l.strip()]
if kind in ("python", "python_ov"):
    from escnet_runtime import Segmenter
    backend = "ort-cpu" if kind == "python" else "ov-cpu"
    seg = Segmenter(target, backend=backend, cache_dir=cache).set_vocabulary(names)
    run = lambda: seg.segment(image)
else:
    import onnxruntime as ort
    sess = ort.InferenceSession(target + "/segmenter.onnx", providers=["CPUExecutionProvider"])
    run = lambda: sess.run(["labels"], {"image": image[None]})
run()
times = []
for _ in range(int(repeat)):
    t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"seconds": statistics.median(times), "peak_gib": peak}))
"""

CHILD_PEAK = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stderr.write(p.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20)"
)


def measure_python(kind: str, target: Path, image: Path, names: Path, cache: Path, repeat: int) -> dict[str, float]:
    cmd = [sys.executable, "-c", MEASURE, kind, str(target), str(image), str(names), str(cache), str(repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_cpp(tool: Path, folder: Path, vocab: Path | None, image: Path, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(tool), "--artifacts", str(folder), "--out", f"{tmp}/labels.png", "--repeat", str(repeat + 1)]
        cmd += ["--vocabulary", str(vocab)] if vocab else []
        out = subprocess.run([sys.executable, "-c", CHILD_PEAK, *cmd, str(image)], capture_output=True, text=True)
    found = re.search(r"median ([\d.]+) ms", out.stderr)
    if not found:
        raise RuntimeError(f"escnet-segment-cpp failed: {out.stderr.strip()[-500:]}")
    return {"seconds": float(found.group(1)) / 1000, "peak_gib": float(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=Path, required=True)
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--classes-file", type=Path, required=True)
    p.add_argument("--counts", default="20,150,847")
    p.add_argument("--baked", default="", help="COUNT=FOLDER,... baked folders of the first COUNT classes")
    p.add_argument("--cpp-tool", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "escnet-bench-text-cache")
    args = p.parse_args()
    from escnet_runtime import Segmenter
    from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary

    all_names = [n.strip() for n in args.classes_file.read_text(encoding="utf-8").splitlines() if n.strip()]
    baked = dict(item.split("=", 1) for item in args.baked.split(",") if item)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in [int(c) for c in args.counts.split(",")]:
            names = all_names[:count]
            names_file = Path(tmp) / f"names{count}.txt"
            names_file.write_text("\n".join(names) + "\n", encoding="utf-8")
            seg = Segmenter(args.artifacts, backend="ort-cpu", cache_dir=args.cache)
            vocab = write_vocabulary(Path(tmp) / f"v{count}.escvocab", vocabulary_of(seg, names))  # fills the cache
            del seg
            row = {"classes": count, "python": measure_python("python", args.artifacts, args.image, names_file,
                                                                args.cache, args.repeat)}  # fmt: skip
            if str(count) in baked:
                folder = Path(baked[str(count)])
                row["baked_ort"] = measure_python("baked", folder, args.image, names_file, args.cache, args.repeat)
                if args.cpp_tool:
                    row["baked_cpp_ov"] = measure_cpp(args.cpp_tool, folder, None, args.image, args.repeat)
            if args.cpp_tool:
                row["python_ov"] = measure_python("python_ov", args.artifacts, args.image, names_file,
                                                  args.cache, args.repeat)  # fmt: skip
                row["cpp_ov"] = measure_cpp(args.cpp_tool, args.artifacts, vocab, args.image, args.repeat)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| classes | runtime | s / image | peak RSS GiB |\n|---|---|---|---|")
    for row in rows:
        for key, value in row.items():
            if key != "classes":
                print(f"| {row['classes']} | {key} | {value['seconds']:.2f} | {value['peak_gib']:.2f} |")


if __name__ == "__main__":
    main()
