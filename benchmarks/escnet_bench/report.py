"""The Markdown summary of a run, built from the result JSON (so it can be rebuilt from a file)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

REFERENCE = "torch"
# ESC-Net ViT-B throughput as published in the paper (images/s by class count); measured on the
# paper's GPU, not this machine's: compare the shape of the curve, not the absolute numbers.
PUBLISHED_VIT_B = {19: 15.0, 58: 9.9, 150: 5.1}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e6):
            return f"{value:.2g}"
        return f"{value:.{digits}f}"
    return str(value)


def _util(pct: float | None) -> str:
    """Utilisation of the measured peak; over 100 % means the peak or the time was mis-measured (busy machine)."""
    return "unreliable (>100)" if pct is not None and pct > 100.0 else _fmt(pct)


def _other(other: float | None) -> str:
    """End to end minus the graphs, each timed separately: below zero only through timing noise."""
    return "unreliable (<0)" if other is not None and other < 0 else _fmt(other)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _times(timing_row: dict[str, Any]) -> tuple[str, str, str]:
    """The median, p90 and p99 cells (ms) of one timing row."""
    t = timing_row["timing"]
    return _fmt(t["median_ms"]), _fmt(t["p90_ms"]), _fmt(t["p99_ms"])


def _index(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def _busy_warning(env: dict[str, Any]) -> list[str]:
    """A warning line when other work shared the CPU (1-minute load average above half the cores)."""
    cores = env.get("cpu_count") or 1
    loads = [x[0] for x in (env.get("load_average_start"), env.get("load_average_end")) if x]
    if not loads or max(loads) <= cores / 2:
        return []
    return [
        f"- **Warning: the machine was busy** (1-minute load average up to {max(loads):.1f} on {cores} cores): "
        "times and even ratios are unreliable (thread pools degrade unevenly); rerun on an idle machine."
    ]


def _libraries(peak: dict[str, Any]) -> str:
    """' (torch 199, onnxruntime 397; ...)': each library's own figure, when more than one was measured."""
    by = peak.get("by_library") or {}
    return f" ({', '.join(f'{k} {v:.0f}' for k, v in by.items())}; the best is the ceiling)" if len(by) > 1 else ""


def _weights(data: dict[str, Any]) -> list[str]:
    """Where the weights came from; a random init is said in bold (its segmentations are noise)."""
    weights = data.get("weights")
    if weights is None:
        return ["- Weights: not recorded (a result from before schema 1.3)."]
    if weights["random_init"]:
        return [
            f"- **Weights: {weights['weights']}**: a randomly initialised model. Speed, memory and parity "
            "figures hold; its segmentations are noise."
        ]
    return [f"- Weights: {weights['weights']}."]


def _header(data: dict[str, Any]) -> list[str]:
    opts, env = data["options"], data["environment"]
    gpu = env.get("gpu")
    peaks = ", ".join(
        f"{p['device']} {p['dtype']} {p['gflops_per_s']:.0f} GFLOP/s{_libraries(p)}" for p in data["peaks"]
    )
    return [
        f"# escnet-bench: {opts['preset']}",
        "",
        f"- Run {data['created_utc']}, {_fmt(data.get('duration_s'))} s; schema {data['schema_version']}.",
        f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} cores, torch threads {env.get('torch_threads')}); "
        f"GPU: {gpu['name'] if gpu else 'none'}.",
        *_weights(data),
        f"- Measured peak matmul: {peaks}.",
        *_busy_warning(env),
        f"- Classes {opts['classes']}, batch {opts['batch']}, {opts['warmup']} warm-up + "
        f"{opts['iters'] or 'auto (2-10)'} timed runs per figure; times are medians in ms.",
        "",
    ]


def _class_chunk(backend: dict[str, Any]) -> str:
    """Classes per decoder call as the backend ran it: a number, "all" (one call), "-" (not opened)."""
    details = backend.get("details") or {}
    if "class_chunk" not in details:
        return "-"
    return "all" if details["class_chunk"] is None else str(details["class_chunk"])


def _backends(data: dict[str, Any]) -> list[str]:
    rows = [
        (
            b["name"],
            b["status"],
            b["device"],
            b["precision"],
            _class_chunk(b),
            _fmt(b.get("load_s"), 2),
            b.get("reason") or "",
        )
        for b in data["backends"]
    ]
    header = ["backend", "status", "device", "precision", "class chunk", "load s", "reason"]
    note = "class chunk: classes per decoder call (larger vocabularies run chunk by chunk; all: one call)."
    return ["## Backends", "", note, ""] + _table(header, rows) + [""]


def _end_to_end(data: dict[str, Any]) -> list[str]:
    e2e = [t for t in data["timings"] if t["stage"] == "end_to_end"]
    ref = _index([t for t in e2e if t["backend"] == REFERENCE], "classes", "batch")
    graphs = _index(data["timings"], "backend", "classes", "batch", "stage")
    mem = _index(data["memory"], "backend", "classes", "batch")
    task = _index(data["task_parity"], "backend", "classes", "batch")
    rows = []
    for t in e2e:
        key = (t["classes"], t["batch"])
        full = (t["backend"], *key)
        speedup = ref[key]["timing"]["median_ms"] / t["timing"]["median_ms"] if key in ref else None
        m, p = mem.get(full, {}), task.get(full, {})
        parts = [graphs.get((*full, g)) for g in ("image_encoder", "decoder")]
        in_graphs = sum(g["timing"]["median_ms"] for g in parts) if all(parts) else None  # type: ignore[index]
        other = t["timing"]["median_ms"] - in_graphs if in_graphs is not None else None
        rows.append(
            (
                t["backend"],
                t["classes"],
                t["batch"],
                *_times(t),
                _fmt(in_graphs),
                _other(other),
                _fmt(t["timing"]["throughput"], 2),
                _fmt(speedup, 2),
                _fmt(t["achieved_gflops_per_s"]),
                _util(t["utilisation_pct"]),
                _fmt(m.get("process_peak_rss_mib"), 0),
                _fmt(m.get("delta_rss_mib"), 0),
                _fmt(m.get("peak_device_mib"), 0),
                _fmt(p.get("agreement"), 4),
                _fmt(p.get("agreement_confident"), 4),
                _fmt(p.get("miou"), 4),
                _fmt(p.get("gate")),
            )
        )
    header = ["backend", "T", "B", "median", "p90", "p99", "graphs", "other", "img/s", "x torch", "GFLOP/s", "util %"]
    header += ["process MiB", "Δ RSS MiB", "dev MiB", "agree", "agree conf.", "mIoU", "gate"]
    note = (
        "graphs: image encoder + decoder medians of the same backend; other: the rest (pre-processing, "
        "upsampling, arg-max, copies); the graphs and the whole are timed separately, so under load "
        "other can come out below zero and util % over 100: such cells read 'unreliable'. "
        "x torch: the reference's median over this one, same run, same inputs. "
        "process MiB: peak RSS of a fresh process that loads only this backend and runs this point; Δ RSS: the "
        "in-process peak over the RSS before the measurement; dev: peak device memory. agree: label agreement "
        "with PyTorch on all pixels; agree conf.: on pixels whose PyTorch top-2 score margin > 0.05; gate: "
        "fp32 every graph max-abs <= 1e-4 and agree >= 0.999, bf16/fp16 agree conf. >= 0.99. util %: of the "
        "measured peak in the backend's precision (bf16 backends: the bf16 peak)."
    )
    title = "## End to end (uint8 image -> labels, vocabulary embedded)"
    return [title, "", note, ""] + _table(header, rows) + [""]


def _graphs(data: dict[str, Any]) -> list[str]:
    parity: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for p in data["parity"]:
        parity.setdefault((p["backend"], p["classes"], p["batch"], p["graph"]), []).append(p)
    rows = []
    for t in data["timings"]:
        if t["stage"] not in ("image_encoder", "text_encoder", "decoder"):
            continue
        ps = parity.get((t["backend"], t["classes"], t["batch"], t["stage"]), [])
        rows.append(
            (
                t["backend"],
                t["classes"],
                t["batch"],
                t["stage"],
                *_times(t),
                _fmt(t["gflops"], 2),
                _util(t["utilisation_pct"]),
                _fmt(max((p["max_abs"] for p in ps), default=None), 6),
                _fmt(min((p["cosine"] for p in ps), default=None), 6),
                _fmt(all(p["passed"] for p in ps) if ps else None),
            )
        )
    header = ["backend", "T", "B", "graph", "median", "p90", "p99", "GFLOPs", "util %", "max-abs", "cosine", "parity"]
    return ["## Per graph (reference inputs)", ""] + _table(header, rows) + [""]


def _text(data: dict[str, Any]) -> list[str]:
    by = _index([t for t in data["timings"] if t["stage"].startswith("text")], "backend", "classes", "batch", "stage")
    keys = sorted({(b, c) for (b, c, bt, _s) in by if bt == min(data["options"]["batch"])})
    batch = min(data["options"]["batch"])
    rows = []
    for backend, classes in keys:

        def get(stage: str, backend: str = backend, classes: int = classes) -> float | None:
            return by.get((backend, classes, batch, stage), {}).get("timing", {}).get("median_ms")

        cells = [_fmt(get(s), 3) for s in ("text_cold", "text_warm", "text_warm_disk", "text_encoder")]
        rows.append((backend, classes, *cells))
    header = ["backend", "T", "cold cache", "warm (memory)", "warm (disk)", "text graph"]
    return ["## Text: class names -> embeddings (ms)", ""] + _table(header, rows) + [""]


def _fits(data: dict[str, Any]) -> list[str]:
    rows = []
    for f in data["fits"]:
        if f["variable"] != "classes" or f["metric"] not in ("median_ms", "delta_rss_mib", "peak_device_mib"):
            continue
        ((at, predicted),) = f["predictions"].items()
        rows.append(
            (
                f["backend"],
                f["stage"],
                f["metric"],
                f["fixed"]["batch"],
                _fmt(f["intercept"], 2),
                _fmt(f["slope"], 3),
                _fmt(f["r2"], 3),
                f"{_fmt(predicted, 0)} @ {at}",
            )
        )
    header = ["backend", "stage", "metric", "B", "a", "b per class", "r²", "predicted"]
    lines = ["## Scaling: metric = a + b x classes (least squares)", ""]
    if any(f["points"] < 3 for f in data["fits"]):
        lines += [
            "Fits through two points have no r² and follow every bit of noise: measure three or more class "
            "counts (e.g. --classes 20,59,150) before trusting a prediction.",
            "",
        ]
    return lines + (_table(header, rows) if rows else ["(fewer than two class counts: no fit)"]) + [""]


def _published(data: dict[str, Any]) -> list[str]:
    """GPU rows at the published class counts next to the published figures (vit-b16 only)."""
    if data["options"]["preset"] != "vit-b16":
        return []
    gpu = {b["name"] for b in data["backends"] if b["device"] == "cuda" and b["status"] == "ok"}
    rows = [
        (t["backend"], t["classes"], t["batch"], _fmt(t["timing"]["throughput"], 2), PUBLISHED_VIT_B[t["classes"]])
        for t in data["timings"]
        if t["stage"] == "end_to_end" and t["backend"] in gpu and t["classes"] in PUBLISHED_VIT_B
    ]
    if not rows:
        return []
    where = (data["environment"].get("gpu") or {}).get("name", "?")
    title = f"## Against the published ESC-Net ViT-B figures (this GPU: {where}; published: the paper's GPU)"
    return [title, ""] + _table(["backend", "T", "B", "img/s here", "img/s published"], rows) + [""]


def markdown_summary(data: dict[str, Any]) -> str:
    """The whole summary as Markdown text."""
    parts = _header(data) + _backends(data) + _end_to_end(data) + _published(data) + _text(data)
    parts += _graphs(data) + _fits(data)
    return "\n".join(parts)
