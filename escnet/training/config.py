"""The typed training configuration. Saved beside the run as JSON and read back strictly."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# Fields a resumed run may change; every other field must equal the saved run's.
RESUMABLE_CHANGES = frozenset(
    {"iters", "log_every", "ckpt_every", "val_every", "val_limit", "progress", "threads", "time_limit"}
)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (defaults: CAT-Seg's / the paper's recipe)."""

    data: str  # data root: COCO-Stuff prepared layout, or a synthetic / custom set with classes.txt
    out: str  # run folder: checkpoints, logs, the final model
    preset: str = "vit-b16"
    dataset: Literal["auto", "coco171", "synthetic"] = "auto"  # auto: coco-stuff/ if present, else classes.txt
    iters: int = 80000  # the paper's schedule: about 46 h for vit-b16 on a 2-core CPU; bound it with time_limit
    batch_size: int = 4  # global batch, split evenly over the processes
    lr: float = 2e-4
    backbone_multiplier: float = 0.01  # lr factor of CLIP (q/v only) and the SAM blocks
    weight_decay: float = 1e-4
    warmup_iters: int = 0
    grad_clip: float = 0.01  # max L2 norm of all gradients together (CAT-Seg: full model, 0.01)
    crop: int | None = None  # training crop side; None: the preset's image size
    scale_min: float = 0.75
    scale_max: float = 1.5
    seed: int = 0
    amp: bool = True  # autocast on CUDA (bfloat16 where supported, else float16); never on CPU
    clip_weights: str | None = None
    sam_weights: str | None = None
    log_every: int = 10
    ckpt_every: int = 500
    val_every: int = 500  # validate every N steps and at the end, when the data has a held-out split (0: never)
    val_limit: int = 20  # validation images (a small held-out set: a learning curve, not a benchmark)
    num_workers: int = 0
    threads: int | None = None  # torch CPU threads per process; None: torch's default
    progress: bool = True
    # Wall-clock seconds of this invocation (a resumed run gets the limit afresh); when reached,
    # save and stop before `iters`.
    time_limit: float | None = None
    # "steps": cosine over `iters`. "time": cosine over `time_limit` seconds of wall clock (a fixed
    # time budget on a shared machine); a resumed run goes on from the learning rate it stopped at
    # down to 0 over its new time_limit (resumable, not bit-identical). "auto": "time" when a
    # time_limit is given, else "steps".
    lr_schedule: Literal["auto", "steps", "time"] = "auto"

    @property
    def schedule(self) -> str:
        """The schedule in force: "steps" or "time" ("auto" resolved)."""
        if self.lr_schedule == "auto":
            return "time" if self.time_limit is not None else "steps"
        return self.lr_schedule

    def check(self) -> None:
        """Raise ValueError with one line on a nonsensical value."""
        for name, value in self.to_dict().items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        positive = ("iters", "batch_size", "log_every", "ckpt_every", "val_limit")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.backbone_multiplier < 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError("lr and grad_clip must be > 0; backbone_multiplier and weight_decay >= 0")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ValueError(f"time_limit must be > 0 seconds, got {self.time_limit}")
        if self.val_every < 0 or self.warmup_iters < 0 or self.num_workers < 0:
            raise ValueError("val_every, warmup_iters and num_workers must be >= 0")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        if self.crop is not None and (self.crop < 32 or self.crop % 4):
            raise ValueError(f"crop must be >= 32 and divisible by 4, got {self.crop}")
        if self.lr_schedule not in ("auto", "steps", "time"):
            raise ValueError(f"lr_schedule must be auto, steps or time, got {self.lr_schedule!r}")
        if self.lr_schedule == "time" and self.time_limit is None:
            raise ValueError("lr_schedule 'time' needs a time_limit")
        if self.dataset not in ("auto", "coco171", "synthetic"):
            raise ValueError(f"dataset must be auto, coco171 or synthetic, got {self.dataset!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """A TrainConfig from a dict; unknown fields and missing required ones are an error."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"{source}: unknown training config fields {unknown}")
    hints = typing.get_type_hints(TrainConfig)
    for name, value in data.items():
        if not _matches(value, hints[name]):
            raise ValueError(f"{source}: field {name!r} is {value!r}; expected {_describe(hints[name])}")
    try:
        return TrainConfig(**data)
    except TypeError as e:
        raise ValueError(f"{source}: {e}") from None


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's type (int, float, str, bool, None, Literal, unions)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    return "null" if hint is type(None) else hint.__name__


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON object of TrainConfig fields (a partial one: the CLI supplies the rest)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: config file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON config ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of training config fields")
    return data


def resume_differences(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """Fields that differ between a saved run and a resume request, excluding the changeable ones."""
    a, b = saved.to_dict(), new.to_dict()
    diffs = [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if k not in RESUMABLE_CHANGES | {"lr_schedule"} and a[k] != b[k]]
    if saved.schedule != new.schedule:  # "auto" is compared as what it resolves to (time with a time_limit)
        diffs.append(f"lr schedule: {saved.schedule} -> {new.schedule} (a time schedule resumes with --time-limit)")
    return diffs
