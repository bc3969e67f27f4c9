"""Progress of a command's long work on stderr: rich's bar on a terminal, plain lines elsewhere.

A bar only renders on a terminal; in a CI log or a file a long run would print nothing for
minutes. :class:`StepProgress` therefore draws rich's bar when stderr is a terminal and
otherwise prints one plain line per step, with the elapsed time::

    escnet-bench [   12.3 s] (3/40) reference: T=10 B=1

Every command of the project (export, bench, train, eval, segment) reports through it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def plain_line(title: str, elapsed: float, description: str, done: int | None = None, total: int | None = None) -> str:
    """One progress line: ``title [elapsed s] (done/total) description``."""
    count = f" ({done}/{total})" if done is not None and total else ""
    return f"{title} [{elapsed:7.1f} s]{count} {description}"


class StepProgress:
    """Context manager over a run's steps: ``start(total)``, ``step(next)``, ``note(text)``, ``update(...)``.

    ``plain``: None decides by whether ``stream`` (default stderr) is a terminal. ``min_interval``:
    in plain mode, ``update`` prints at most one line per this many seconds (the last one always);
    ``step`` and ``note`` always print. ``enabled=False``: no bar and no lines (``--no-progress``).
    """

    def __init__(
        self,
        title: str,
        total: int | None = None,
        plain: bool | None = None,
        stream: TextIO | None = None,
        transient: bool = False,
        min_interval: float = 0.0,
        enabled: bool = True,
    ) -> None:
        self.title, self.total, self.done = title, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.plain = plain if plain is not None else not _is_terminal(self.stream)
        self.enabled = enabled
        self.min_interval = min_interval
        self._t0 = time.perf_counter()
        self._last_line = float("-inf")
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True, width=160 if self.plain else None)
        self._bar: Progress | None = None
        if enabled and not self.plain:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=transient,
            )
            self._task = self._bar.add_task(title, total=total)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def __enter__(self) -> StepProgress:
        self._t0 = time.perf_counter()
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _line(self, description: str) -> None:
        if not self.enabled:
            return
        self._last_line = time.perf_counter()
        print(plain_line(self.title, self.elapsed, description, self.done, self.total), file=self.stream, flush=True)

    def start(self, total: int) -> None:
        """The work will take ``total`` steps."""
        self.total, self.done = total, 0
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=0)

    def step(self, description: str) -> None:
        """One step is done; ``description`` says what runs next."""
        self.update(self.done + 1, description, force=True)

    def note(self, description: str) -> None:
        """What runs now, outside the counted steps (e.g. exporting the artifacts first)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.title}: {description}")
        else:
            self._line(description)

    def update(
        self, completed: int, description: str | None = None, total: int | None = None, force: bool = False
    ) -> None:
        """Set the completed count (and the description / total); plain mode honours ``min_interval``."""
        self.done = completed
        if total is not None:
            self.total = total
        if self._bar is not None:
            fields = {"description": f"{self.title}: {description}"} if description else {}
            self._bar.update(self._task, completed=completed, total=self.total, **fields)
            return
        last = self.total is not None and completed >= self.total
        if force or last or time.perf_counter() - self._last_line >= self.min_interval:
            self._line(description or "")

    def print(self, message: object) -> None:
        """A message (text or a rich renderable, e.g. a table) that stays, above the bar on a terminal."""
        if isinstance(message, str):
            self.console.print(message, markup=False, highlight=False)
        else:
            self.console.print(message)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
