"""The run's steps on stderr (escnet_runtime.progress: a bar on a terminal, plain lines elsewhere)."""

from __future__ import annotations

from escnet_runtime.progress import StepProgress

from escnet_bench.runner import Progress as RunnerProgress


class BenchProgress(StepProgress, RunnerProgress):
    """The runner's steps (``start``, ``step``), free-text notes (export steps) and messages."""

    def __init__(self) -> None:
        super().__init__("escnet-bench")
