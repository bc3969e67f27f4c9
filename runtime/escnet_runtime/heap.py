"""Handing the C heap's free pages back to the OS (glibc ``malloc_trim``).

Memory a library frees goes back to malloc, whose per-thread arenas keep it: the process's RSS
does not fall, and the next large allocation (e.g. another OpenVINO graph's working memory) can
land on top of it instead of reusing it. Elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where there is none (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return None


def trim_heap() -> None:
    """Return every malloc arena's free pages to the OS."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
