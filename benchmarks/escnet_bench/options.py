"""The run's options, parsed and checked before any work: a bad value is one line, exit 2.

Defaults keep ``escnet-bench`` with no flags as short as a meaningful run can be (what it does:
``DEFAULTS_RATIONALE``, shown by ``--help``); the full sweep (20, 59, 150, 459, 847 classes;
batch 1, 2, 4) is one flag away.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from escnet.presets import PRESETS

TORCH_BACKENDS = (
    "torch", "torch-bf16", "torch-compile", "torch-compile-bf16",
    "torch-cuda", "torch-cuda-fp16", "torch-cuda-bf16", "torch-cuda-compile",
)  # fmt: skip
RUNTIME_BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "trt", "ov-cpu", "ov-cpu-bf16", "ort-cpu-int8", "ov-cpu-int8")
CPP_BACKENDS = ("cpp-cpu", "cpp-cpu-bf16", "cpp-cpu-int8")  # libescnet through its C API (--cpp-lib)
ALL_BACKENDS = TORCH_BACKENDS + RUNTIME_BACKENDS + CPP_BACKENDS
# "default": every backend but the CPU torch.compile peers, which compile for minutes per new
# class count on a small CPU (ask for them by name, or with "all").
SLOW_TO_START = ("torch-compile", "torch-compile-bf16")
DEFAULT_SET = tuple(b for b in ALL_BACKENDS if b not in SLOW_TO_START)
REFERENCE_BACKEND = "torch"

DEFAULT_PRESET = "vit-b16"
DEFAULT_BACKENDS = "default"
DEFAULT_CLASSES = "10,20"
DEFAULT_BATCH = "1"
DEFAULT_ITERS = "auto"
AUTO_MIN_ITERS = 2  # --iters auto: at least this many timed runs ...
AUTO_MAX_ITERS = 10  # ... at most this many ...
AUTO_BUDGET_S = 5.0  # ... stopping once the timed runs of one figure add up to this
DEFAULT_WARMUP = 1
DEFAULT_OUT = "bench-results"
DEFAULT_ARTIFACTS = "artifacts"
PREDICT_CLASSES = 2000  # the vocabulary the fitted per-class cost is extrapolated to
MAX_CLASSES = 20000
MAX_BATCH = 256

DEFAULTS_RATIONALE = (
    "The default run (no flags): when --artifacts has no manifest, export vit-b16 into it first (three graphs "
    "and the decoder's step graphs, checked against PyTorch; the longest part), then benchmark every backend "
    "but the CPU torch.compile peers (those this machine lacks are reported as skipped) at 10 and 20 classes, "
    "batch 1: 1 warm-up, then --iters "
    "auto (2 to 10 timed runs, stopping after about 5 s per figure), plus each CPU backend's peak memory in a "
    "fresh process. On a 2-core CPU that takes minutes, the export first far longer (measured times: "
    "docs/benchmarks.md). Two class counts are the fewest that give a per-class cost fit. Use "
    "--classes 20,59,150,459,847 --batch 1,2,4 for the full sweep (far longer: one vit-b16 decoder forward at "
    "150 classes takes seconds on such a CPU)."
)


class OptionError(ValueError):
    """A bad command-line value; the message is the one line the user sees."""


@dataclass(frozen=True)
class BenchOptions:
    """Everything a run depends on; saved in the JSON so a run can be reproduced."""

    preset: str = DEFAULT_PRESET
    backends: tuple[str, ...] = DEFAULT_SET
    classes: tuple[int, ...] = (10, 20)
    batch: tuple[int, ...] = (1,)
    iters: int | None = None  # None: automatic (AUTO_MIN_ITERS..AUTO_MAX_ITERS within AUTO_BUDGET_S)
    warmup: int = DEFAULT_WARMUP
    artifacts: Path = Path(DEFAULT_ARTIFACTS)
    out: Path = Path(DEFAULT_OUT)
    checkpoint: Path | None = None
    export_missing: bool = True
    isolated_memory: bool = True  # also measure each CPU backend's peak RSS in a fresh process
    seed: int = 0
    predict_classes: int = PREDICT_CLASSES
    class_chunk: int | None = None  # classes per decoder call; None: each backend's default (manifest / config)
    cpp_lib: Path | None = None  # the C++ runtime's library; None: build/cpp/libescnet.so when there

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("artifacts", "out", "checkpoint", "cpp_lib"):
            d[key] = str(d[key]) if d[key] is not None else None
        d["backends"] = list(self.backends)
        d["classes"] = list(self.classes)
        d["batch"] = list(self.batch)
        return d


def parse_int_list(text: str, what: str, lo: int, hi: int) -> tuple[int, ...]:
    """ "20,150" -> (20, 150): sorted, distinct, each in [lo, hi]."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise OptionError(f"--{what} {text!r}: expected a comma-separated list of integers, e.g. '{lo},{lo * 2}'")
    values = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise OptionError(f"--{what} {text!r}: {p!r} is not an integer") from None
        if not lo <= v <= hi:
            raise OptionError(f"--{what} {text!r}: {v} is out of range; expected {lo} to {hi}")
        values.append(v)
    return tuple(sorted(set(values)))


def parse_backends(text: str) -> tuple[str, ...]:
    """ "torch,ort-cpu", "default" or "all" -> backend names in the order given, duplicates removed."""
    if text.strip() == "all":
        return ALL_BACKENDS
    if text.strip() == "default":
        return DEFAULT_SET
    names = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise OptionError(
            f"--backends {text!r}: expected a comma-separated list, e.g. 'torch,ort-cpu', 'default' or 'all'"
        )
    unknown = [n for n in names if n not in ALL_BACKENDS]
    if unknown:
        raise OptionError(
            f"--backends: unknown backend {unknown[0]!r}; "
            f"expected 'default', 'all' or some of {', '.join(ALL_BACKENDS)}"
        )
    return tuple(dict.fromkeys(names))


def build_options(
    preset: str,
    backends: str,
    classes: str,
    batch: str,
    iters: int | None,
    warmup: int,
    artifacts: str,
    out: str,
    checkpoint: str | None = None,
    export_missing: bool = True,
    seed: int = 0,
    isolated_memory: bool = True,
    class_chunk: int | None = None,
    cpp_lib: str | None = None,
) -> BenchOptions:
    """Check every value; raise :class:`OptionError` with one line on the first bad one."""
    if preset not in PRESETS:
        raise OptionError(f"--preset: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if iters is not None and iters < 1:
        raise OptionError(f"--iters {iters}: expected at least 1 timed run, or 'auto'")
    if warmup < 0:
        raise OptionError(f"--warmup {warmup}: expected 0 or more warm-up runs")
    if class_chunk is not None and class_chunk < 1:
        raise OptionError(f"--class-chunk {class_chunk}: expected at least 1")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise OptionError(f"--checkpoint {checkpoint}: no such file")
    if cpp_lib is not None and not Path(cpp_lib).is_file():
        raise OptionError(f"--cpp-lib {cpp_lib}: no such file (build runtime/cpp first: docs/cpp.md)")
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise OptionError(f"--out {out}: exists and is not a folder")
    return BenchOptions(
        preset=preset,
        backends=parse_backends(backends),
        classes=parse_int_list(classes, "classes", 1, MAX_CLASSES),
        batch=parse_int_list(batch, "batch", 1, MAX_BATCH),
        iters=iters,
        warmup=warmup,
        artifacts=Path(artifacts),
        out=out_path,
        checkpoint=Path(checkpoint) if checkpoint else None,
        export_missing=export_missing,
        isolated_memory=isolated_memory,
        seed=seed,
        class_chunk=class_chunk,
        cpp_lib=Path(cpp_lib) if cpp_lib else None,
    )
