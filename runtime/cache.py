"""A content-addressed text-embedding cache, in memory and on disk.

One entry per (model identity, template, class name): the model identity is the sha256 of the
text encoder that ran, the sha256 of the tokenizer vocabulary, the context length and the
precision. So a vocabulary is encoded once per model, ever; a new name only costs its own
encode. Entries are float32 ``.npy`` files (exact bits), written atomically, in
``<dir>/v1/<key[:2]>/<key>.npy``. A corrupt or foreign file is treated as a miss and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fileio import atomic_path

LAYOUT = "v1"


class CacheWriteWarning(UserWarning):
    """The cache folder cannot be written; embeddings stay in memory for this process."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/escnet/text-embeddings`` (``~/.cache/escnet/text-embeddings``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "escnet" / "text-embeddings"


@dataclass(frozen=True)
class ModelIdentity:
    """What makes an embedding: which text encoder, tokenizer and precision produced it."""

    text_encoder_sha256: str
    tokenizer_sha256: str
    context_length: int
    precision: str

    def key(self, template: str, name: str) -> str:
        """Hex sha256 of every part of the identity plus the template and the class name."""
        parts = [LAYOUT, self.text_encoder_sha256, self.tokenizer_sha256, self.context_length, self.precision]
        payload = json.dumps([*parts, template, name], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    disk_reads: int = 0
    disk_writes: int = 0


class TextEmbeddingCache:
    """Embeddings (D,) float32 by key; ``directory`` None keeps them in memory only."""

    def __init__(self, directory: str | Path | None = None, dim: int | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.dim = dim
        self._memory: dict[str, np.ndarray] = {}
        self.stats = CacheStats()

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / LAYOUT / key[:2] / f"{key}.npy"

    def _read(self, key: str) -> np.ndarray | None:
        if self.directory is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if value.dtype != np.float32 or value.ndim != 1 or (self.dim is not None and value.shape[0] != self.dim):
            return None
        self.stats.disk_reads += 1
        return value

    def get(self, key: str) -> np.ndarray | None:
        """The cached embedding (D,) float32, or None (a miss)."""
        value = self._memory.get(key)
        if value is None:
            value = self._read(key)
            if value is not None:
                self._memory[key] = value
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        """Store (D,) float32 in memory and, with a directory, atomically on disk."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        if value.ndim != 1:
            raise ValueError(f"a cache entry is one embedding (D,), got shape {value.shape}")
        self._memory[key] = value
        if self.directory is None:
            return
        try:
            with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as f:
                np.save(f, value, allow_pickle=False)
        except OSError as e:
            warnings.warn(
                f"text-embedding cache {self.directory} is not writable ({e.strerror or e}); "
                "keeping embeddings in memory",
                CacheWriteWarning,
                stacklevel=2,
            )
            self.directory = None
            return
        self.stats.disk_writes += 1

    def clear_memory(self) -> None:
        self._memory.clear()
