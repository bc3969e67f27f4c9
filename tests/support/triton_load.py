"""Load run against a real tritonserver, beside the in-process runtime, in one run.

``python -m tests.support.triton_load --artifacts DIR [--clients 8] [--requests 25]``: writes a
repository with ``escnet-export triton``'s writer, starts the bundled tritonserver on 127.0.0.1,
then C concurrent HTTP clients send R requests each (the same image and vocabulary). Prints
p50/p99 latency and images/s for the server and for the runtime in this process (sequential,
same images), the error count and the server's peak memory (server + Python-backend stubs).
Exits 1 when any request failed.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer


@dataclass
class LoadFigures:
    name: str
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    images_per_s: float


def figures(name: str, latencies: list[float], errors: int, wall_s: float) -> LoadFigures:
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return LoadFigures(name, len(latencies) + errors, errors, statistics.median(ms), p99, len(latencies) / wall_s)


def in_process(artifacts: Path, backend: str, image: np.ndarray, names: list[str], n: int) -> LoadFigures:
    from escnet_runtime import Segmenter

    seg = Segmenter(artifacts, backend=backend, disk_cache=False).set_vocabulary(names)
    seg.segment(image)  # warm-up
    lat = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        seg.segment(image)
        lat.append(time.perf_counter() - t)
    return figures(f"in-process {backend}", lat, 0, time.perf_counter() - start)


def _client(url: str, image: np.ndarray, names: list[str], n: int) -> tuple[list[float], int]:
    import tritonclient.http as httpclient
    from escnet_runtime.serving import encode_names

    client = httpclient.InferenceServerClient(url, connection_timeout=600, network_timeout=600)
    x = httpclient.InferInput("image", [1, *image.shape], "UINT8")
    x.set_data_from_numpy(image[None])
    text = encode_names(names)[None]
    c = httpclient.InferInput("classes", list(text.shape), "UINT8")
    c.set_data_from_numpy(text)
    lat, errors = [], 0
    try:
        for _ in range(n):
            t = time.perf_counter()
            try:
                client.infer("escnet", [x, c])
                lat.append(time.perf_counter() - t)
            except Exception:  # counted: any failed request fails the run
                errors += 1
    finally:
        client.close()
    return lat, errors


def served(server, image: np.ndarray, names: list[str], clients: int, requests: int) -> LoadFigures:
    _client(server.http, image, names, 1)  # warm-up (and the text cache)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: _client(server.http, image, names, requests), range(clients)))
    wall = time.perf_counter() - start
    lat = [x for r in results for x in r[0]]
    return figures(f"tritonserver {clients} clients", lat, sum(r[1] for r in results), wall)


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240): an image's width and height, each 1..8192."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected WIDTHxHEIGHT, e.g. 320x240", param_hint="--size") from None
    if not (0 < w <= 8192 and 0 < h <= 8192):
        raise typer.BadParameter(f"{text!r}: width and height must be 1..8192", param_hint="--size")
    return w, h


def print_rows(rows: list[LoadFigures], peak: int, header: str) -> None:
    print(header)
    print(f"{'':28} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r.name:28} {r.requests:8d} {r.errors:6d} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.images_per_s:9.2f}")
    print(f"server peak memory (tritonserver + Python stubs, sum of VmHWM): {peak / 2**20:.0f} MiB")
    print(f"throughput ratio server / in-process: {rows[0].images_per_s / rows[1].images_per_s:.2f}")


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__.splitlines()[0])


@app.command()
def load(
    artifacts: Annotated[Path, typer.Option(exists=True, file_okay=False, help="artifacts folder")],
    backend: Annotated[str, typer.Option(help="runtime backend of the served model")] = "ort-cpu",
    clients: Annotated[int, typer.Option(min=1, max=256, help="concurrent HTTP clients")] = 8,
    requests: Annotated[int, typer.Option(min=1, help="requests per client")] = 25,
    size: Annotated[str, typer.Option(help="image WIDTHxHEIGHT")] = "320x240",
    classes: Annotated[int, typer.Option(min=1, max=1024, help="classes per request")] = 20,
    instances: Annotated[int, typer.Option(min=1, help="model instances")] = 1,
    max_batch: Annotated[int, typer.Option(min=0, help="max_batch_size")] = 4,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the figures here")] = None,
) -> None:
    """Serve ARTIFACTS with tritonserver and load it with concurrent clients; exit 1 on any failed request."""
    w, h = parse_size(size)
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    names = [f"class {i}" for i in range(classes)]
    rows, peak = _run(artifacts, backend, image, names, clients, requests, instances, max_batch)
    print_rows(rows, peak, f"{w}x{h} image, {classes} classes, {instances} instance(s), max batch {max_batch}")
    if json_out is not None:
        json_out.write_text(json.dumps({"rows": [asdict(r) for r in rows], "server_peak_rss_bytes": peak}, indent=2))
    if rows[0].errors:
        raise typer.Exit(1)


def _run(
    artifacts: Path,
    backend: str,
    image: np.ndarray,
    names: list[str],
    clients: int,
    requests: int,
    instances: int,
    max_batch: int,
) -> tuple[list[LoadFigures], int]:
    """(the server's figures, the in-process runtime's), and the server's peak memory in bytes."""
    from escnet_export.errors import ExportError
    from escnet_export.triton.repository import TritonOptions, write_repository

    from .tritonserver import TritonServer

    with tempfile.TemporaryDirectory(prefix="escnet-triton-load-") as tmp:
        repo = Path(tmp) / "repo"
        try:
            write_repository(TritonOptions(artifacts, repo, backend, max_batch, instances))
        except ExportError as e:  # before any server or client starts
            raise typer.BadParameter(str(e), param_hint="--artifacts/--backend") from None
        with TritonServer(repo, Path(tmp) / "server") as server:
            served_figures = served(server, image, names, clients, requests)
            peak = server.peak_rss_bytes()
    return [served_figures, in_process(artifacts, backend, image, names, requests)], peak


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "triton_load")


if __name__ == "__main__":
    main()
