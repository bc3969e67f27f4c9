"""What the harness needs from a contender, whatever library runs it.

A *contender* is one way of running the model that the benchmark measures: PyTorch eager, or an
``escnet_runtime`` backend (a runtime ``Backend`` wrapped in a ``Segmenter``). The word keeps the
harness's classes apart from the runtime's ``Backend``; in the report and the JSON each contender
is named by its ``--backends`` name.

Every contender takes numpy inputs keyed by the contract's tensor names
(``escnet_runtime.contract``) and returns numpy outputs under the same names, so the harness can
feed each graph the same reference inputs and compare every output with PyTorch's. Inputs are
staged (converted, moved to the device) once, outside the timed region: ``graph_fn`` returns the
zero-argument callable that is timed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Family = Literal["torch", "runtime", "cpp"]
Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]
MemoryDevice = Literal["cpu", "cuda-torch", "cuda-sampled"]


class ContenderUnavailable(Exception):
    """The backend cannot run on this machine; the message is the reason shown in the report."""


@dataclass(frozen=True)
class ContenderSpec:
    """A backend as the report names it."""

    name: str
    family: Family
    device: Device
    precision: Precision
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VocabularyRun:
    """A timed text call and its untimed set-up (run before every call, e.g. emptying the cache)."""

    fn: Callable[[], Any]
    before: Callable[[], None] | None = None


Cache = Literal["cold", "warm", "warm_disk"]


class Contender(ABC):
    """One way of running the three graphs and the whole pipeline (``spec.name``: its --backends name)."""

    spec: ContenderSpec
    memory_device: MemoryDevice = "cpu"
    separate_graphs: bool = True  # False: only the pipeline and the text path can be timed (no per-graph calls)

    @property
    def uses_cuda_events(self) -> bool:
        """Time with CUDA events (GPU backends whose work torch's current stream can see)."""
        return False

    def sync(self) -> None:  # noqa: B027 - a no-op default, not an abstract method
        """Wait for outstanding device work (no-op for synchronous backends)."""

    @abstractmethod
    def graph_fn(self, graph: str, inputs: dict[str, np.ndarray]) -> Callable[[], Any]:
        """Stage ``inputs`` for ``graph`` and return a callable that runs the graph once."""

    @abstractmethod
    def graph_outputs(self, graph: str, raw: Any) -> dict[str, np.ndarray]:
        """The callable's result as float32 numpy arrays keyed by output name."""

    @abstractmethod
    def vocabulary_fn(self, names: list[str], cache: Cache) -> VocabularyRun | None:
        """Class names -> text embeddings through the backend's tokenizer, text encoder and cache.

        ``cold``: every call starts from an empty cache (memory and disk); ``warm``: the cache
        holds the vocabulary in memory; ``warm_disk``: only on disk (a new process). None where
        the backend has no such cache.
        """

    @abstractmethod
    def set_vocabulary(self, names: list[str]) -> None:
        """Make ``names`` the vocabulary of :meth:`segment_fn`."""

    @abstractmethod
    def segment_fn(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        """A callable segmenting (B, H, W, 3) uint8 images -> labels (B, H, W) int."""

    def details(self) -> dict[str, Any]:
        """What the report should know about this backend's setup (providers, versions, ...)."""
        return {}

    def close(self) -> None:  # noqa: B027 - a no-op default, not an abstract method
        """Release sessions and device memory."""
