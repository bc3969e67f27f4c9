"""A rich progress display for the long steps of a command (on stderr)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .onnx_pipeline import Step


@contextlib.contextmanager
def steps(console: Console, title: str) -> Iterator[Step]:
    """Yield ``step(name)``: each call completes the previous step and starts the next."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=None)
        count = 0

        def step(name: str) -> None:
            nonlocal count
            count += 1
            progress.update(task, description=f"{title}: {name}", completed=count - 1)

        yield step
        progress.update(task, description=f"{title}: done", completed=count, total=count)
