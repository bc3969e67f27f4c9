"""A compiled-model cache whose entries are keyed and hashed: damage means compiling again.

OpenVINO's own ``CACHE_DIR`` trusts its blobs: one with 64 flipped bytes imports and runs, and
its labels differ (0.58 % of the pixels, measured). This cache uses OpenVINO's public
``CompiledModel.export_model`` / ``Core.import_model`` instead, and owns the files:
- the file name is a key over everything a compiled model depends on (the graph's sha256, the
  compile configuration, the f32 islands marked, OpenVINO's version, the device and its
  capabilities), so another graph or setting never finds this one's entry;
- each file is ``<sha256 of the blob>\\n<blob>``; the blob is read once, its sha256 checked, and
  those very bytes imported. A mismatch, a size out of bounds or an import that fails is one
  warning line; the model is then compiled again and the entry replaced (atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from escnet_runtime.fileio import write_bytes_atomic

SUFFIX = ".blob"
LAYOUT = 1  # bump when the key or the file layout changes
_HEADER = 65  # 64 hex digits and a newline


class CompiledCacheWarning(UserWarning):
    """A cached compiled model was damaged (or unreadable) and is compiled again."""


def entry_key(parts: dict[str, Any]) -> str:
    """sha256 over the JSON of ``parts`` (graph sha256, config, islands, versions, device)."""
    text = json.dumps({"layout": LAYOUT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class CompiledModelCache:
    """Entries in ``directory`` (created 0700: a compiled model is code the process runs)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    def load(self, key: str, max_bytes: int) -> bytes | None:
        """The verified blob of ``key``; None when there is none or it is damaged (warned)."""
        path = self.path(key)
        try:
            size = path.stat().st_size
            if size > max_bytes + _HEADER:
                self._damaged(path, f"{size} bytes, more than the {max_bytes} a compiled model of this graph can need")
                return None
            with open(path, "rb") as f:
                data = f.read(max_bytes + _HEADER + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            self._damaged(path, f"unreadable: {e.strerror or type(e).__name__}")
            return None
        header, blob = data[:_HEADER], data[_HEADER:]
        if header[64:] != b"\n" or hashlib.sha256(blob).hexdigest().encode() != header[:64]:
            self._damaged(path, "its content does not match its sha256")
            return None
        return blob

    def store(self, key: str, blob: bytes | memoryview) -> None:
        """Write ``blob`` under ``key`` atomically; a cache that cannot be written is no error."""
        digest = hashlib.sha256(blob).hexdigest().encode()
        try:
            write_bytes_atomic(self.path(key), digest + b"\n" + blob)
        except OSError as e:
            warnings.warn(
                f"compiled-model cache {self.directory}: not written ({e.strerror or type(e).__name__})",
                CompiledCacheWarning,
                stacklevel=4,
            )

    def damaged(self, key: str, why: str) -> None:
        """The blob of ``key`` passed its hash but OpenVINO refused it: warn, drop it."""
        self._damaged(self.path(key), why)

    def _damaged(self, path: Path, why: str) -> None:
        warnings.warn(
            f"compiled-model cache: {path} is damaged ({why}); compiling the model again",
            CompiledCacheWarning,
            stacklevel=5,
        )
        try:
            os.unlink(path)
        except OSError:
            pass  # replaced by the next store anyway
