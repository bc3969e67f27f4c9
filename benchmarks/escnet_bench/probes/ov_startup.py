"""What OpenVINO's compiled-model cache saves when a new process starts, and each backend's peak RSS.

    python -m escnet_bench.probes.ov_startup ARTIFACTS [--backends ort-cpu,ov-cpu,ov-cpu-bf16] [--classes 150]

Per backend, fresh child processes (one at a time) each open a ``Segmenter``, embed a vocabulary
of T classes and segment one 480x640 image: first with an empty compiled-model cache, then again
with the cache the first one filled. Printed per run: seconds to open + embed (graph loading and
compiling, text encoder), seconds for the first image (the decoder and image encoder compile on
first use), the whole process's seconds, its peak RSS (VmHWM), and the cache folder's size. ORT
rows have no cache: they are the yardstick for start time and memory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from escnet_bench.child import ChildError, run_function
from escnet_bench.probes.arguments import (
    ArtifactsArgument,
    Classes,
    check_artifacts,
    check_backends,
    failed,
    probe_app,
    run_probe,
)

app = probe_app(__doc__)


def start_and_segment(artifacts: str, backend: str, classes: int, cache: str) -> dict[str, float]:
    """Child side: seconds to import, to open + embed, and for the first image (OpenVINO caching in ``cache``)."""
    t0 = time.perf_counter()
    from escnet_runtime import Segmenter

    from escnet_bench.inputs import class_names, synthetic_images

    options = {"model_cache_dir": cache} if backend.startswith("ov-") else {}
    t1 = time.perf_counter()
    seg = Segmenter(artifacts, backend=backend, disk_cache=False, **options).set_vocabulary(class_names(classes))
    t2 = time.perf_counter()
    seg.segment(synthetic_images(1, 0)[0])  # (480, 640, 3) uint8
    t3 = time.perf_counter()
    return {"imports_s": t1 - t0, "open_embed_s": t2 - t1, "first_image_s": t3 - t2}


def _size_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def _backend_rows(artifacts: Path, backend: str, classes: int) -> list[str]:
    """One row per fresh process: cold then warm cache for OpenVINO, one row otherwise."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="escnet-ov-cache-") as tmp:
        for state in ("cold", "warm") if backend.startswith("ov-") else ("-",):
            try:
                run = run_function(start_and_segment, str(artifacts), backend, classes, tmp)
            except ChildError as e:
                raise failed(f"{backend} ({state} cache): {e}") from None
            r, peak = run.value, run.peak_rss_mib
            size = f"{_size_mib(Path(tmp)):.0f}" if state != "-" else "-"
            rows.append(
                f"| {backend} | {state} | {r['open_embed_s']:.2f} | {r['first_image_s']:.2f} | {run.seconds:.2f} "
                f"| {'-' if peak is None else f'{peak:.0f}'} | {size} |"
            )
    return rows


@app.command(help=__doc__)
def ov_startup(
    artifacts: ArtifactsArgument,
    backends: Annotated[
        str, typer.Option(help="Comma-separated escnet_runtime backends, one after another.")
    ] = "ort-cpu,ov-cpu,ov-cpu-bf16",
    classes: Classes = 150,
) -> None:
    names = check_backends(backends)
    check_artifacts(artifacts)
    typer.echo(f"T={classes}, one 480x640 image, fresh process per row; times in s, memory in MiB")
    typer.echo("| backend | cache | open + embed | first image | total | peak RSS | cache MiB |")
    typer.echo("|---|---|---|---|---|---|---|")
    for backend in names:
        for row in _backend_rows(artifacts, backend, classes):
            typer.echo(row)


def main() -> None:
    run_probe(app, "escnet_bench.probes.ov_startup")


if __name__ == "__main__":
    main()
