"""Load run against a real tritonserver, beside the in-process runtime, in one run.

``python -m tests.support.triton_load --artifacts DIR [--clients 8] [--requests 25]``: writes a
repository with ``escnet-export triton``'s writer, starts the bundled tritonserver on 127.0.0.1,
then C concurrent HTTP clients send R requests each (the same image and vocabulary). Prints
p50/p99 latency and images/s for the server and for the runtime in this process (sequential,
same images), the error count and the server's peak memory (server + Python-backend stubs).
Exits 1 when any request failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=Path, required=True)
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=25, help="per client")
    p.add_argument("--size", default="320x240", help="image WxH")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=4)
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args(argv)

    from escnet_export.triton.repository import TritonOptions, write_repository

    from .tritonserver import TritonServer

    w, h = (int(v) for v in a.size.split("x"))
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    names = [f"class {i}" for i in range(a.classes)]
    with tempfile.TemporaryDirectory(prefix="escnet-triton-load-") as tmp:
        repo = Path(tmp) / "repo"
        write_repository(TritonOptions(a.artifacts, repo, a.backend, a.max_batch, a.instances))
        with TritonServer(repo, Path(tmp) / "server") as server:
            load = served(server, image, names, a.clients, a.requests)
            peak = server.peak_rss_bytes()
    base = in_process(a.artifacts, a.backend, image, names, a.requests)
    rows = [load, base]
    print(f"{w}x{h} image, {a.classes} classes, {a.instances} instance(s), max batch {a.max_batch}")
    print(f"{'':28} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'images/s':>9}")
    for r in rows:
        print(f"{r.name:28} {r.requests:8d} {r.errors:6d} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.images_per_s:9.2f}")
    print(f"server peak memory (tritonserver + Python stubs, sum of VmHWM): {peak / 2**20:.0f} MiB")
    print(f"throughput ratio server / in-process: {load.images_per_s / base.images_per_s:.2f}")
    if a.json:
        a.json.write_text(json.dumps({"rows": [asdict(r) for r in rows], "server_peak_rss_bytes": peak}, indent=2))
    return 1 if load.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
