"""OpenVINO's peak memory and time beside ONNX Runtime's, and what ``release_memory`` changes.

    python -m escnet_bench.probes.ov_memory ARTIFACTS [--classes 150] [--rounds 2] [--runs 3] [--backend ov-cpu-bf16]

Cases, each a fresh child process, alternating round by round: ``ort-cpu``, then the OpenVINO
backend (``--backend``: ``ov-cpu``, the default, or ``ov-cpu-bf16``) with ``release_memory``
``"steps"`` (ov-cpu's default), ``"encoders"`` (ov-cpu-bf16's) and ``"all"``. A child opens a
``Segmenter``, embeds T class names, segments one 480x640 image once (compiles), then
``--runs`` more times in a row, timed (the median; more than one is a stream of images, where
what a policy re-allocates is paid on every image). Printed per case: the medians of the timed
runs' seconds and of the process's peak RSS (VmHWM), and the medians of the per-round ratios to
``ort-cpu`` (ratios taken side by side survive a noisy machine).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated

import typer
from escnet_runtime.backends.ov import OV_PRECISIONS

from escnet_bench.child import ChildError, run_function
from escnet_bench.probes.arguments import (
    ArtifactsArgument,
    Classes,
    bad,
    check_artifacts,
    failed,
    probe_app,
    run_probe,
)

YARDSTICK = ("ort-cpu", "-")
POLICIES = ("steps", "encoders", "all")
OV_BACKENDS = tuple(OV_PRECISIONS)  # the runtime's OpenVINO backends: ov-cpu, ov-cpu-bf16


def cases(backend: str) -> list[tuple[str, str]]:
    """(backend, release_memory) in the order they run each round: the yardstick first."""
    return [YARDSTICK, *((backend, policy) for policy in POLICIES)]


app = probe_app(__doc__)


def segment_timed(artifacts: str, backend: str, release: str, classes: int, runs: int) -> float:
    """Child side: open, embed ``classes`` names, segment one image (compiles), then ``runs`` more
    times; the median seconds of those."""
    from escnet_runtime import Segmenter

    from escnet_bench.inputs import class_names, synthetic_images

    options = {"release_memory": release} if backend.startswith("ov") else {}
    seg = Segmenter(artifacts, backend=backend, disk_cache=False, **options)
    seg.set_vocabulary(class_names(classes))
    image = synthetic_images(1, 0)[0]  # (480, 640, 3) uint8
    seg.segment(image)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        seg.segment(image)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _measure(
    artifacts: Path, classes: int, rounds: int, runs: int, backend: str
) -> dict[tuple[str, str], list[dict[str, float]]]:
    """Every case once per round, alternating; per case, per round: seconds and peak MiB."""
    table: dict[tuple[str, str], list[dict[str, float]]] = {case: [] for case in cases(backend)}
    for _ in range(rounds):
        for name, release in cases(backend):
            try:
                run = run_function(segment_timed, str(artifacts), name, release, classes, runs)
            except ChildError as e:
                raise failed(f"{name} ({release}): {e}") from None
            table[(name, release)].append({"seconds": run.value, "peak_mib": run.peak_rss_mib or float("nan")})
    return table


def _table(runs: dict[tuple[str, str], list[dict[str, float]]]) -> list[str]:
    """Markdown rows: medians, and medians of the per-round ratios to the first case."""
    base = runs[YARDSTICK]
    lines = ["| backend | release_memory | s | x ort time | peak MiB | x ort peak |", "|---|---|---|---|---|---|"]
    for (backend, release), rows in runs.items():

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        def ratio(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] / b[key] for r, b in zip(rows, base, strict=True))

        lines.append(
            f"| {backend} | {release} | {med('seconds'):.2f} | {ratio('seconds'):.2f} | "
            f"{med('peak_mib'):.0f} | {ratio('peak_mib'):.2f} |"
        )
    return lines


@app.command(help=__doc__)
def ov_memory(
    artifacts: ArtifactsArgument,
    classes: Classes = 150,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds over every case; medians are taken over them.")] = 2,
    runs: Annotated[int, typer.Option(min=1, max=100, help="Timed runs per case after the first (their median).")] = 1,
    backend: Annotated[str, typer.Option(help="The OpenVINO backend: ov-cpu or ov-cpu-bf16.")] = "ov-cpu",
) -> None:
    """OpenVINO's peak memory and time beside ONNX Runtime's, per release_memory case."""
    if backend not in OV_BACKENDS:
        raise bad("'--backend'", f"{backend!r}: expected one of {', '.join(OV_BACKENDS)}")
    check_artifacts(artifacts)
    table = _measure(artifacts, classes, rounds, runs, backend)
    typer.echo(
        f"{classes} classes, 480x640, {rounds} rounds of {runs} timed runs; medians (ratios: per round, to ort-cpu)"
    )
    typer.echo("\n".join(_table(table)))


def main() -> None:
    run_probe(app, "escnet_bench.probes.ov_memory")


if __name__ == "__main__":
    main()
