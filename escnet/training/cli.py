"""``escnet-train``: train ESC-Net on COCO-Stuff (or a synthetic / custom set).

    escnet-train --preset vit-b16 --data datasets --out runs/b16 [--resume]
    torchrun --nproc-per-node 4 -m escnet.training.cli --config run.json --data datasets --out runs/b16

Options given on the command line override ``--config`` (a JSON object of TrainConfig
fields), which overrides the defaults (the paper's recipe).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

HELP = (
    "Train ESC-Net (or resume a run). --data and --out are required (or 'data' / 'out' fields in --config). "
    "The defaults are the paper's recipe: 80000 steps of batch 4, which for vit-b16 on a 2-core CPU is about "
    "46 h (2 s per step); tiny takes about 0.2 s of CPU per step of batch 4 (one thread, 128 px scenes). "
    "Bound a run with --time-limit SECONDS: the learning rate then decays (cosine) over that time budget, and "
    "the run saves and stops when it is spent. --time-limit counts this invocation only: --resume with "
    "--time-limit T trains T more seconds, decaying from the learning rate where the run stopped. "
    "Validation (a small held-out split, --val-limit images) runs every --val-every steps and at the end."
)

app = typer.Typer(add_completion=False, help=HELP, pretty_exceptions_enable=False)


# The options, one alias each (None: not given, so --config or the default holds).
_Data = Annotated[
    Path | None,
    typer.Option(help="Required. Data root (COCO-Stuff prepared layout, or a set with classes.txt).", metavar="DIR"),
]
_Out = Annotated[
    Path | None, typer.Option(help="Required. Run folder: checkpoints, logs, model.safetensors.", metavar="DIR")
]
_Config = Annotated[Path | None, typer.Option(help="JSON file of training config fields.")]
_Preset = Annotated[str | None, typer.Option(help="Model preset: vit-b16, vit-l14 or tiny.")]
_Resume = Annotated[
    bool, typer.Option("--resume", help="Continue the run saved in --out (same recipe; --time-limit is new).")
]
_Dataset = Annotated[str | None, typer.Option(help="auto, coco171 or synthetic.")]
_Iters = Annotated[
    int | None, typer.Option(help="Total optimiser steps of the run (default 80000, ~46 h for vit-b16 here).")
]
_BatchSize = Annotated[int | None, typer.Option(help="Global batch size.")]
_Lr = Annotated[float | None, typer.Option(help="Base learning rate.")]
_BackboneMultiplier = Annotated[float | None, typer.Option(help="LR factor for CLIP and the SAM blocks.")]
_WeightDecay = Annotated[float | None, typer.Option(help="AdamW weight decay (default 1e-4).")]
_WarmupIters = Annotated[int | None, typer.Option(help="Linear learning-rate warm-up steps (default 0).")]
_GradClip = Annotated[float | None, typer.Option(help="Max gradient L2 norm (all parameters).")]
_Crop = Annotated[int | None, typer.Option(help="Training crop side (default: the preset's image size).")]
_ScaleMin = Annotated[float | None, typer.Option(help="Random rescale range, low end (short side / crop).")]
_ScaleMax = Annotated[float | None, typer.Option(help="Random rescale range, high end.")]
_Seed = Annotated[int | None, typer.Option(help="Seed of the initialisation, sampling and augmentation.")]
_Amp = Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")]
_ClipWeights = Annotated[str | None, typer.Option(help="open_clip / OpenAI CLIP state dict.")]
_SamWeights = Annotated[str | None, typer.Option(help="Official SAM checkpoint (sam_vit_b_01ec64.pth).")]
_LogEvery = Annotated[int | None, typer.Option(help="Log the loss every N steps (log.jsonl) (default 10).")]
_CkptEvery = Annotated[int | None, typer.Option(help="Save the resumable state every N steps (default 500).")]
_ValEvery = Annotated[int | None, typer.Option(help="Validate every N steps and at the end (0: never) (default 500).")]
_ValLimit = Annotated[int | None, typer.Option(help="Held-out images per validation (default 20).")]
_NumWorkers = Annotated[int | None, typer.Option(help="DataLoader worker processes (0: load in the main process).")]
_Threads = Annotated[int | None, typer.Option(help="torch CPU threads per process.")]
_Progress = Annotated[
    bool | None, typer.Option("--progress/--no-progress", help="A bar on a terminal, a line per log step elsewhere.")
]
_LrSchedule = Annotated[
    str | None,
    typer.Option(
        help="auto (time with --time-limit, else steps), steps (cosine over --iters), time (cosine over --time-limit)."
    ),
]
_TimeLimit = Annotated[
    float | None,
    typer.Option(help="Wall-clock seconds for this invocation; the schedule decays over it; saves and stops."),
]


@app.command(help=HELP)
def main_command(
    data: _Data = None,
    out: _Out = None,
    config: _Config = None,
    preset: _Preset = None,
    resume: _Resume = False,
    dataset: _Dataset = None,
    iters: _Iters = None,
    batch_size: _BatchSize = None,
    lr: _Lr = None,
    backbone_multiplier: _BackboneMultiplier = None,
    weight_decay: _WeightDecay = None,
    warmup_iters: _WarmupIters = None,
    grad_clip: _GradClip = None,
    crop: _Crop = None,
    scale_min: _ScaleMin = None,
    scale_max: _ScaleMax = None,
    seed: _Seed = None,
    amp: _Amp = None,
    clip_weights: _ClipWeights = None,
    sam_weights: _SamWeights = None,
    log_every: _LogEvery = None,
    ckpt_every: _CkptEvery = None,
    val_every: _ValEvery = None,
    val_limit: _ValLimit = None,
    num_workers: _NumWorkers = None,
    threads: _Threads = None,
    progress: _Progress = None,
    lr_schedule: _LrSchedule = None,
    time_limit: _TimeLimit = None,
) -> None:
    """Train (or resume) one run."""
    given: dict[str, Any] = {k: v for k, v in locals().items() if k not in ("config", "resume") and v is not None}
    _train_run(config, resume, given)


def _train_run(config: Path | None, resume: bool, given: dict[str, Any]) -> None:
    """Merge ``given`` options over ``--config``, train, and print one summary line (rank 0)."""
    from ..data.errors import DatasetError
    from .config import config_from_dict, read_config_file
    from .loop import train

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        fields = read_config_file(config) if config is not None else {}
        fields.update(given)
        for key in ("data", "out"):
            if key not in fields:
                raise ValueError(f"--{key} is required (or a {key!r} field in --config)")
            fields[key] = str(Path(fields[key]).resolve())
        cfg = config_from_dict(fields, str(config) if config else "options")
        result = train(cfg, resume=resume)
    except (ValueError, DatasetError) as e:
        typer.echo(f"error: {_one_line(e)}", err=True)
        raise typer.Exit(2) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return  # one summary line per run, from rank 0
    val = f", val mIoU {result.val_miou:.4f}" if result.val_miou is not None else ""
    typer.echo(f"done: step {result.step}, loss {result.loss:.5f}{val}; model {result.model_path}")


def _one_line(error: Exception) -> str:
    """The error's message; from a DataLoader worker (which wraps it with a traceback), its last line."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if len(lines) <= 1:
        return str(error)
    return re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1])  # drop "module.TypeName: "


def main() -> None:
    from ..cli_usage import run_app

    run_app(app, "escnet-train")


if __name__ == "__main__":
    main()
