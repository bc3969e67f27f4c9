"""Peak memory and time per image: the baked graph and the C++ runtime beside the Python runtime.

    python -m escnet_bench.probes.baked_cpp --artifacts A --image I --classes-file F --counts 20,150,847
        [--baked 20=DIR,...] [--cpp-tool PATH] [--repeat 3] [--concurrent N]

Every figure comes from a fresh process (``escnet_bench.child``: a Python child's own VmHWM, the
C++ tool's ``ru_maxrss``), one after another on the same image, so ratios hold on a noisy machine
better than absolute numbers:
- python: ``Segmenter(ort-cpu)`` on the artifacts, class embeddings read from a text cache
  filled beforehand (the text encoder's own peak is not part of segmenting);
- python_ov (with ``--cpp-tool``): ``Segmenter(ov-cpu)``, the C++ runtime's backend (OpenVINO CPU
  f32), so C++ and Python are compared on the same engine;
- baked_ort: the baked folder's ``segmenter.onnx`` in an ONNX Runtime CPU session (default options);
- cpp_ov, baked_cpp_ov: ``escnet-segment-cpp`` (OpenVINO C++ API, f32) on the artifacts and a
  vocabulary file, and on the baked folder.
Times are medians of ``--repeat`` calls after one warm-up call, inside each process. With
``--concurrent N`` the OpenVINO runs (python_ov, cpp_ov) also time ``--repeat`` rounds of N calls
made at once from N threads on one Segmenter, and report the median round's images per second.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from escnet_bench.child import ChildError, run_function, run_program
from escnet_bench.probes.arguments import (
    ArtifactsOption,
    ClassesFile,
    bad,
    check_artifacts,
    check_counts,
    failed,
    probe_app,
    run_probe,
)

app = probe_app(__doc__)
GIB = 1024.0  # MiB per GiB
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "escnet-bench-text-cache"


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, checked before the first child starts."""

    artifacts: Path
    image: Path
    names: list[str]  # the class list; count N uses its first N names
    counts: list[int]
    baked: dict[int, Path]  # count -> a baked folder of the first ``count`` names
    cpp_tool: Path | None
    repeat: int
    cache: Path  # the text-embedding cache the Python runs read
    concurrent: int = 1  # > 1: also rounds of this many calls at once (OpenVINO runs)


def segment_repeatedly(
    kind: str, target: str, image_path: str, names: list[str], cache: str, repeat: int, concurrent: int = 1
) -> tuple[float, float | None]:
    """Child side: one warm-up call, then the median seconds of ``repeat`` calls on one image, and
    with ``concurrent`` > 1 the median wall seconds of ``repeat`` rounds of that many calls at once.

    ``kind``: "python" (ort-cpu) or "python_ov" (ov-cpu) on the artifacts folder ``target``, or
    "baked_ort" on the baked folder ``target``.
    """
    from escnet_runtime.image_io import load_image

    image = load_image(image_path)  # (H, W, 3) uint8
    run = _baked_session(target, image) if kind == "baked_ort" else _segmenter_call(kind, target, image, names, cache)
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (_rounds(run, concurrent, repeat) if concurrent > 1 else None)


def _baked_session(target: str, image: Any) -> Callable[[], object]:
    import onnxruntime as ort
    from escnet_runtime.baked import load_baked_manifest
    from escnet_runtime.contract import IMAGE, LABELS

    graph = load_baked_manifest(target, verify=True).graph  # the bytes the session reads were hashed
    sess = ort.InferenceSession(os.path.join(target, graph.file), providers=["CPUExecutionProvider"])
    return lambda: sess.run([LABELS], {IMAGE: image[None]})  # (1, H, W) int32


def _segmenter_call(kind: str, target: str, image: Any, names: list[str], cache: str) -> Callable[[], object]:
    from escnet_runtime import Segmenter

    backend = "ort-cpu" if kind == "python" else "ov-cpu"
    seg = Segmenter(target, backend=backend, cache_dir=cache).set_vocabulary(names)
    return lambda: seg.segment(image)


def _rounds(run: Callable[[], object], concurrent: int, repeat: int) -> float:
    """The median wall seconds of ``repeat`` rounds of ``concurrent`` calls made at once from threads."""
    from concurrent.futures import ThreadPoolExecutor

    walls = []
    with ThreadPoolExecutor(concurrent) as pool:
        for _ in range(repeat):
            start = time.perf_counter()
            list(pool.map(lambda _i: run(), range(concurrent)))
            walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def _python(plan: Plan, kind: str, target: Path, names: list[str]) -> dict[str, float]:
    concurrent = plan.concurrent if kind == "python_ov" else 1
    args = (kind, str(target), str(plan.image), names, str(plan.cache), plan.repeat, concurrent)
    try:
        run = run_function(segment_repeatedly, *args)
    except ChildError as e:
        raise failed(f"{kind}, {len(names)} classes: {e}") from None
    seconds, wall = run.value
    return _figures(seconds, wall, concurrent, run.peak_rss_mib)


def _figures(seconds: float, wall: float | None, concurrent: int, peak_mib: float | None) -> dict[str, float]:
    out = {"seconds": seconds, "peak_gib": (peak_mib or float("nan")) / GIB}
    if wall is not None:
        out["concurrent_images_per_s"] = concurrent / wall
    return out


def _cpp(plan: Plan, folder: Path, vocabulary: Path | None) -> dict[str, float]:
    assert plan.cpp_tool is not None
    concurrent = plan.concurrent if vocabulary else 1  # rounds at once on the artifacts, as python_ov
    with tempfile.TemporaryDirectory(prefix="escnet-bench-cpp-") as tmp:
        cmd = [plan.cpp_tool, "--artifacts", folder, "--out", Path(tmp) / "labels.png", "--repeat"]
        cmd += [str(plan.repeat + 1)]  # its first call is in the median: one more, as a warm-up
        cmd += ["--vocabulary", vocabulary] if vocabulary else []
        cmd += ["--concurrent", str(concurrent)] if concurrent > 1 else []
        try:
            run = run_program([*cmd, plan.image])
        except ChildError as e:
            raise failed(e) from None
    found = re.search(r"median ([\d.]+) ms", run.stderr)
    rounds = re.search(r"concurrent calls took ([\d.]+) ms wall", run.stderr)
    if run.returncode != 0 or not found or (concurrent > 1 and not rounds):
        tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise failed(f"{plan.cpp_tool.name} exited {run.returncode}: {tail}")
    wall = float(rounds.group(1)) / 1000 if rounds else None
    return _figures(float(found.group(1)) / 1000, wall, concurrent, run.peak_rss_mib)


def _row(plan: Plan, count: int, tmp: Path) -> dict[str, Any]:
    """Every runtime at ``count`` classes (the first ``count`` names)."""
    from escnet_runtime import Segmenter
    from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary

    names = plan.names[:count]
    with Segmenter(plan.artifacts, backend="ort-cpu", cache_dir=plan.cache) as seg:  # fills the text cache
        vocabulary = write_vocabulary(tmp / f"v{count}.escvocab", vocabulary_of(seg, names))
    row: dict[str, Any] = {"classes": count, "python": _python(plan, "python", plan.artifacts, names)}
    if count in plan.baked:
        row["baked_ort"] = _python(plan, "baked_ort", plan.baked[count], names)
        if plan.cpp_tool:
            row["baked_cpp_ov"] = _cpp(plan, plan.baked[count], None)
    if plan.cpp_tool:
        row["python_ov"] = _python(plan, "python_ov", plan.artifacts, names)
        row["cpp_ov"] = _cpp(plan, plan.artifacts, vocabulary)
    return row


def _check_baked(text: str, counts: list[int]) -> dict[int, Path]:
    """``"20=DIR,150=DIR"`` -> {count: folder}; each count one of --counts, each folder a verified baked folder."""
    from escnet_runtime import ManifestError
    from escnet_runtime.baked import load_baked_manifest

    baked: dict[int, Path] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        count, sep, folder = item.partition("=")
        if not sep or not count.isdigit() or int(count) not in counts:
            raise bad("'--baked'", f"{item!r}: expected COUNT=FOLDER with COUNT one of --counts {counts}")
        try:
            manifest = load_baked_manifest(folder, verify=True)
        except ManifestError as e:
            raise bad("'--baked'", str(e)) from None
        if len(manifest.class_names) != int(count):
            raise bad("'--baked'", f"{folder}: holds {len(manifest.class_names)} classes, not {count}")
        baked[int(count)] = Path(folder)
    return baked


def _check_inputs(image: Path, classes_file: Path, cpp_tool: Path | None) -> list[str]:
    """The image decodes, the class list reads and checks, the C++ tool runs; the class names."""
    from escnet_runtime import InputError
    from escnet_runtime.cli import read_classes
    from escnet_runtime.image_io import load_image
    from escnet_runtime.vocabulary import check_class_names

    try:
        load_image(image)
    except InputError as e:
        raise bad("'--image'", str(e)) from None
    try:
        names = check_class_names(read_classes(None, classes_file))
    except InputError as e:
        raise bad("'--classes-file'", str(e)) from None
    if cpp_tool is not None and not (cpp_tool.is_file() and os.access(cpp_tool, os.X_OK)):
        raise bad("'--cpp-tool'", f"{cpp_tool}: not an executable file")
    return names


def _print_table(rows: list[dict[str, Any]], concurrent: int) -> None:
    at_once = f" {concurrent} at once, images / s |" if concurrent > 1 else ""
    typer.echo(
        f"| classes | runtime | s / image | peak RSS GiB |{at_once}\n|---|---|---|---|{'---|' if at_once else ''}"
    )
    for row in rows:
        for key, value in row.items():
            if key == "classes":
                continue
            rate = value.get("concurrent_images_per_s")
            extra = (f" {rate:.2f} |" if rate is not None else " - |") if at_once else ""
            typer.echo(f"| {row['classes']} | {key} | {value['seconds']:.2f} | {value['peak_gib']:.2f} |{extra}")


@app.command(help=__doc__)
def baked_cpp(
    artifacts: ArtifactsOption,
    image: Annotated[Path, typer.Option(help="The image every runtime segments.")],
    classes_file: ClassesFile,  # count N uses the first N names
    counts: Annotated[str, typer.Option(help="Comma-separated class counts.")] = "20,150,847",
    baked: Annotated[str, typer.Option(help="COUNT=FOLDER,...: baked folders of the first COUNT classes.")] = "",
    cpp_tool: Annotated[Path | None, typer.Option(help="escnet-segment-cpp, to time the C++ runtime.")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Timed calls per process, after one warm-up call.")] = 3,
    cache: Annotated[Path, typer.Option(help="Text-embedding cache folder the Python runs read.")] = DEFAULT_CACHE,
    concurrent: Annotated[
        int, typer.Option(min=1, max=64, help="Also time rounds of N calls at once (python_ov, cpp_ov).")
    ] = 1,
) -> None:
    check_artifacts(artifacts, "'--artifacts'")
    names = _check_inputs(image, classes_file, cpp_tool)
    wanted = check_counts(counts, hi=len(names))
    plan = Plan(artifacts, image, names, wanted, _check_baked(baked, wanted), cpp_tool, repeat, cache, concurrent)
    rows = []
    with tempfile.TemporaryDirectory(prefix="escnet-bench-vocab-") as tmp:
        for count in plan.counts:
            rows.append(_row(plan, count, Path(tmp)))
            typer.echo(json.dumps(rows[-1]))
    _print_table(rows, plan.concurrent)


def main() -> None:
    run_probe(app, "escnet_bench.probes.baked_cpp")


if __name__ == "__main__":
    main()
