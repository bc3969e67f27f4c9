"""A content-addressed text-embedding cache, in memory and on disk.

One entry per (model identity, template, class name): the model identity is the sha256 of the
text encoder that ran, the sha256 of the tokenizer vocabulary, the context length and the
precision. So a vocabulary is encoded once per model, ever; a new name only costs its own
encode. Entries are ``.npy`` files in ``<dir>/v2/<key[:2]>/<key>.npy`` holding one record:
the embedding (D,) float32 (exact bits) and the sha256 of key + embedding; written atomically
(temporary file, then rename) with the umask's permissions.

An entry is used only when it reads as that record, its checksum matches, and the embedding is
finite, non-zero and of the expected norm (1 for the text encoder's normalised outputs).
Anything else (flipped bytes, a NaN, zeros, a broken header, a truncated file, another key's
entry) is damaged: a miss, recomputed and replaced, with one warning per cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from escnet_runtime.fileio import atomic_path

LAYOUT = "v2"  # v1 entries (plain float32 .npy, no checksum) are never read
NORM_TOLERANCE = 1e-2  # relative; fp16 engines round the normalised embedding


class CacheWriteWarning(UserWarning):
    """The cache folder cannot be written; embeddings stay in memory for this process."""


class CacheDamagedWarning(UserWarning):
    """A cache entry failed its checks; it is recomputed and replaced."""


def entry_dtype(dim: int) -> np.dtype:
    """One cache record: the sha256 of key + embedding bytes, then the embedding (D,) float32."""
    return np.dtype([("sha256", "u1", (32,)), ("embedding", "<f4", (dim,))])


def entry_digest(key: str, embedding: np.ndarray) -> bytes:
    return hashlib.sha256(key.encode("utf-8") + np.ascontiguousarray(embedding, dtype="<f4").tobytes()).digest()


def embedding_problem(value: np.ndarray, expected_norm: float | None) -> str | None:
    """Why ``value`` (D,) cannot be a text embedding (non-finite, zero, wrong norm), or None."""
    if not np.all(np.isfinite(value)):
        return "non-finite values"
    norm = float(np.linalg.norm(value.astype(np.float64)))
    if norm == 0.0:
        return "an all-zero vector"
    if expected_norm is not None and abs(norm - expected_norm) > NORM_TOLERANCE * expected_norm:
        return f"norm {norm:.4g}, expected {expected_norm:g}"
    return None


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


def _read_record(path: Path, dim: int | None) -> tuple[np.ndarray | None, str]:
    """(the entry's record, "") or (None, why it is damaged). The header is checked before any
    data is read, so a header claiming a huge array allocates nothing."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
            fields = dtype.fields or {}
            found = fields["embedding"][0].shape[0] if "embedding" in fields and fields["embedding"][0].shape else 0
            if shape != () or dtype != entry_dtype(found) or dim not in (None, found):
                return None, f"not a {LAYOUT} entry of dimension {dim or 'D'}"
            data = f.read(dtype.itemsize + 1)
    except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, TokenError, ...
        return None, f"unreadable: {type(e).__name__}"
    if len(data) != dtype.itemsize:
        return None, "truncated" if len(data) < dtype.itemsize else "trailing bytes"
    return np.frombuffer(data, dtype=dtype, count=1)[0], ""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    disk_reads: int = 0
    disk_writes: int = 0
    damaged: int = 0


class TextEmbeddingCache:
    """Embeddings (D,) float32 by key; ``directory`` None keeps them in memory only.

    ``expected_norm``: the L2 norm every embedding has (1.0 for normalised ones; None: any
    non-zero norm). An embedding that fails the checks is never written to disk.
    """

    def __init__(
        self, directory: str | Path | None = None, dim: int | None = None, expected_norm: float | None = None
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.dim = dim
        self.expected_norm = expected_norm
        self._memory: dict[str, np.ndarray] = {}
        self.stats = CacheStats()
        self._warned_damaged = False

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / LAYOUT / key[:2] / f"{key}.npy"

    def _damaged(self, path: Path, why: str) -> None:
        self.stats.damaged += 1
        if not self._warned_damaged:
            self._warned_damaged = True
            warnings.warn(
                f"text-embedding cache {self.directory}: damaged entry {path.name} ({why}); "
                "damaged entries are recomputed and replaced",
                CacheDamagedWarning,
                stacklevel=4,
            )

    def _read(self, key: str) -> np.ndarray | None:
        if self.directory is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        record, why = _read_record(path, self.dim)
        if record is None:
            self._damaged(path, why)
            return None
        value = np.array(record["embedding"], dtype=np.float32)  # (D,), a copy out of the record
        if record["sha256"].tobytes() != entry_digest(key, value):
            self._damaged(path, "checksum mismatch")
            return None
        problem = embedding_problem(value, self.expected_norm)
        if problem:
            self._damaged(path, problem)
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
        if self.directory is None or embedding_problem(value, self.expected_norm):
            return  # nothing that would fail the read checks is persisted
        record = np.zeros((), dtype=entry_dtype(value.shape[0]))
        record["sha256"] = np.frombuffer(entry_digest(key, value), dtype=np.uint8)
        record["embedding"] = value
        try:
            with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as f:
                np.save(f, record, allow_pickle=False)
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
