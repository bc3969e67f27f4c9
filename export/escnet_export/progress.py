"""The export's steps on stderr (escnet_runtime.progress: a bar on a terminal, plain lines elsewhere)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from escnet_runtime.progress import StepProgress
from rich.console import Console

from escnet_export.onnx.pipeline import Step


@contextlib.contextmanager
def steps(console: Console, title: str) -> Iterator[Step]:
    """Yield ``step(name)``: each call completes the previous step and starts the next.

    ``console``: where the lines go (its file; stderr for the CLI).
    """
    with StepProgress(title, stream=console.file, transient=True) as progress:
        yield lambda name: progress.step(name)
        progress.note("done")
