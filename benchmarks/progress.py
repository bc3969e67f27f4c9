"""A rich progress bar on stderr that follows the runner's steps."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .runner import Progress as RunnerProgress


class RichProgress(RunnerProgress):
    """Context manager: a bar over the run's steps, plus free-text notes (export steps)."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task("starting", total=None)

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def note(self, description: str) -> None:
        """Show a step outside the benchmark proper (e.g. exporting the artifacts)."""
        self._bar.update(self._task, description=description)

    def start(self, total: int) -> None:
        self._bar.update(self._task, total=total, completed=0)

    def step(self, description: str) -> None:
        self._bar.update(self._task, advance=1, description=description)
