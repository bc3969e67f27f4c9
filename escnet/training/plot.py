"""Plot a run's ``log.jsonl``: training loss and validation mIoU against step.

python -m escnet.training.plot RUN_DIR [--out curve.png]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..io_utils import atomic_path


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    """(train records, val records) of a ``log.jsonl``."""
    if not path.is_file():
        raise ValueError(f"{path}: no training log")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if r.get("kind") == "train"], [r for r in records if r.get("kind") == "val"]


def plot_run(run: Path, out: Path | None = None) -> Path:
    """Write a PNG of loss (left axis) and validation mIoU (right axis) per step; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = read_log(run / "log.jsonl")
    out = out or run / "curve.png"
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in train], [r["loss_mean"] for r in train], color="tab:blue", label="train loss (mean)")
    ax.set_xlabel("step")
    ax.set_ylabel("BCE loss", color="tab:blue")
    if val:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in val], [r["miou"] for r in val], "o-", color="tab:red", label="val mIoU")
        ax2.set_ylabel("val mIoU", color="tab:red")
        ax2.set_ylim(0, 1)
    ax.set_title(run.name)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out


def main(
    run: Annotated[Path, typer.Argument(help="Run folder holding log.jsonl.")],
    out: Annotated[Path | None, typer.Option(help="PNG path (default RUN/curve.png).")] = None,
) -> None:
    """Plot a training run's learning curve: the training loss and, when the run validated, the
    validation mIoU against the step, from RUN/log.jsonl into a PNG."""
    try:
        typer.echo(plot_run(run, out))
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


if __name__ == "__main__":
    typer.run(main)
