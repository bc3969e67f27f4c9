"""The rows of a run's results, as typed records that become the schema-versioned JSON.

Every row names its backend, class count T and batch B, so the JSON can be filtered like a
table. Stages: the three graphs (``image_encoder``, ``text_encoder``, ``decoder``), the whole
per-image pipeline with the vocabulary already embedded (``end_to_end``), and class names ->
text embeddings through the backend's own tokenizer and cache (``text_cold``: empty cache,
``text_warm``: the vocabulary cached in memory, ``text_warm_disk``: on disk only, as a new process finds it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from escnet_bench.memory import MemoryReading
from escnet_bench.parity import TaskParity, TensorParity
from escnet_bench.scaling import LinearFit
from escnet_bench.stats import TimingStats

SCHEMA_VERSION = "1.3.0"  # 1.1: options.class_chunk; 1.2: peaks[].by_library; 1.3: weights, CPU bf16 peak,
# timings[].peak_dtype, task_parity[] on confident pixels and the parity gate
STAGES = ("image_encoder", "text_encoder", "decoder", "end_to_end", "text_cold", "text_warm", "text_warm_disk")


@dataclass
class BackendRecord:
    """A requested backend and what became of it: ``ok``, ``skipped`` (with why) or ``failed``."""

    name: str
    family: str
    device: str
    precision: str
    description: str
    status: str  # "ok" | "skipped" | "failed"
    reason: str | None = None
    load_s: float | None = None
    load_rss_mib: float | None = None  # RSS growth while the backend loaded (sessions, weights)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TimingRecord:
    backend: str
    classes: int
    batch: int
    stage: str
    timing: TimingStats
    first_call_ms: float | None  # the first warm-up: lazy init, compilation, engine build
    gflops: float | None  # work of one call (None: not a model computation, e.g. a cache hit)
    achieved_gflops_per_s: float | None
    utilisation_pct: float | None  # of this device's measured peak matmul GFLOP/s
    peak_dtype: str | None = None  # the peak it was judged against (fp32, or bf16 for bf16 backends)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timing"] = self.timing.to_dict()
        return d


@dataclass
class MemoryRecord:
    """In-process reading of the end-to-end measurement, plus (CPU backends) the peak RSS of a fresh
    process doing the same work (see ``escnet_bench.isolated``)."""

    backend: str
    classes: int
    batch: int
    stage: str
    reading: MemoryReading
    process_peak_rss_mib: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "classes": self.classes,
            "batch": self.batch,
            "stage": self.stage,
            **self.reading.to_dict(),
            "process_peak_rss_mib": self.process_peak_rss_mib,
        }


@dataclass(frozen=True)
class ParityRecord:
    backend: str
    classes: int
    batch: int
    graph: str
    precision: str
    tensor: TensorParity

    def to_dict(self) -> dict[str, Any]:
        head = {"backend": self.backend, "classes": self.classes, "batch": self.batch, "graph": self.graph}
        return {**head, "precision": self.precision, **self.tensor.to_dict()}


@dataclass(frozen=True)
class TaskRecord:
    backend: str
    classes: int
    batch: int
    task: TaskParity
    gate: bool | None = None  # passes its precision's parity gate (parity.GATES); None: not judged

    def to_dict(self) -> dict[str, Any]:
        head = {"backend": self.backend, "classes": self.classes, "batch": self.batch}
        return {**head, **self.task.to_dict(), "gate": self.gate}


@dataclass(frozen=True)
class FitRecord:
    """``metric = intercept + slope * variable`` for one backend and stage, the other axis fixed."""

    backend: str
    stage: str
    metric: str  # "median_ms" | "delta_rss_mib" | "peak_rss_mib" | "peak_device_mib"
    variable: str  # "classes" | "batch"
    fixed: dict[str, int]  # the axis held constant, e.g. {"batch": 1}
    fit: LinearFit
    predictions: dict[str, float]  # str(variable value) -> predicted metric

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "fit"}
        return {**d, **self.fit.to_dict()}


@dataclass
class BenchResult:
    """Everything one run measured."""

    created_utc: str
    options: dict[str, Any]
    environment: dict[str, Any]
    methods: dict[str, str]
    peaks: list[dict[str, Any]]
    backends: list[BackendRecord] = field(default_factory=list)
    timings: list[TimingRecord] = field(default_factory=list)
    memory: list[MemoryRecord] = field(default_factory=list)
    parity: list[ParityRecord] = field(default_factory=list)
    task_parity: list[TaskRecord] = field(default_factory=list)
    fits: list[FitRecord] = field(default_factory=list)
    duration_s: float | None = None
    weights: dict[str, Any] | None = None  # the reference weights' provenance: {"weights": line, "random_init": bool}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "escnet-bench",
            "schema_version": SCHEMA_VERSION,
            "created_utc": self.created_utc,
            "duration_s": self.duration_s,
            "options": self.options,
            "environment": self.environment,
            "methods": self.methods,
            "peaks": self.peaks,
            "backends": [b.to_dict() for b in self.backends],
            "timings": [t.to_dict() for t in self.timings],
            "memory": [m.to_dict() for m in self.memory],
            "parity": [p.to_dict() for p in self.parity],
            "task_parity": [t.to_dict() for t in self.task_parity],
            "fits": [f.to_dict() for f in self.fits],
            **({"weights": self.weights} if self.weights is not None else {}),
        }
