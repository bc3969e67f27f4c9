"""Atomic file writing: a reader never sees a half-written file."""

# Twin of escnet_runtime.fileio (plus a chmod for writers that replace the file): the two may not import each other.

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (Linux: read from /proc; elsewhere set and restored under a lock)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new regular file under the umask (0644 for the usual 022)."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; renamed onto ``path`` only on success.

    On any error the temporary file is removed and ``path`` is left as it was. The file gets
    the umask's permissions (mkstemp alone would leave it 0600), like a plain open(), while it is
    written and after it, also when the writer replaced it with a file of its own.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    mode = file_mode()
    try:
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, mode)  # a writer may have replaced the file (safetensors' save_file does: 0600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
