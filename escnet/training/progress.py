"""The training loop's progress on stderr: rich's bar on a terminal, a plain line per log step elsewhere."""

from __future__ import annotations

import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import TrainConfig


def is_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bar(enabled: bool) -> Progress:
    """rich's bar on a terminal; elsewhere (a CI log, a file) :func:`plain_line` prints a line per log step."""
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not (enabled and is_terminal()),
    )


def plain_line(step: int, config: TrainConfig, loss: float, lr: float, ran: tuple[int, float]) -> str:
    """``train [elapsed s] step k/N loss x lr y, ETA ...``; ``ran``: (steps, seconds) of this invocation."""
    steps, seconds = ran
    eta = (config.iters - step) * seconds / max(1, steps)
    if config.time_limit is not None:
        eta = min(eta, max(0.0, config.time_limit - seconds))
    return f"train [{seconds:7.1f} s] step {step}/{config.iters} loss {loss:.4f} lr {lr:.3g}, ETA {duration(eta)}"


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def announce(config: TrainConfig, start: int) -> None:
    """What this invocation will do, once, before the first step."""
    limit = f", at most {config.time_limit:.0f} s in this invocation" if config.time_limit is not None else ""
    resumed = f"; resuming at step {start}" if start else ""
    print(
        f"escnet-train: {config.preset}, up to {config.iters} steps of batch {config.batch_size}{limit}, "
        f"lr schedule {config.schedule}{resumed}",
        file=sys.stderr,
        flush=True,
    )
