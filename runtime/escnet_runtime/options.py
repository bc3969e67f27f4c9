"""Checks of the options a caller gives ``Segmenter`` (and the command line), before any work.

Each wrong value is one InputError line naming the argument: ``threads must be a whole number
>= 1, got 'x' (str)``, ``cache_dir must be a folder path ..., got 1 (int)``, ``model_cache_dir:
/ro is not writable ...``. An option no backend takes is named with the ones it does take.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from escnet_runtime.errors import InputError


def kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


def positive_int(name: str, value: object) -> int:
    """``value`` as a whole number >= 1, or a one-line InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be a whole number >= 1, got {value!r} ({kind(value)})")
    if value < 1:
        raise InputError(f"{name} is {value}; expected at least 1")
    return int(value)


def path_option(name: str, value: object) -> Path | None:
    """None, or a str / os.PathLike as a Path; anything else is a one-line InputError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | os.PathLike) or value == "":
        raise InputError(f"{name} must be a folder path (str or Path), got {repr(value)[:60]} ({kind(value)})")
    return Path(value)


def check_writable_folder(path: Path, name: str) -> None:
    """``path`` is a folder this process can write into, or can be created as one; else one line."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{name}: {path} is not a folder")
    existing = path
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            raise InputError(f"{name}: {path} cannot be created ({existing} is a broken link)")
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{name}: {path} cannot be created ({existing} is a file, not a folder)")
    try:
        with tempfile.TemporaryFile(dir=existing):  # an unnamed file where possible: nothing stays behind
            pass
    except OSError as e:
        where = "" if existing == path else f" (in {existing})"
        raise InputError(f"{name}: {path} is not writable{where}: {e.strerror or e}") from None


_CHECKS: dict[str, Callable[[str, Any], object]] = {
    "threads": lambda n, v: v is None or positive_int(n, v),
    "num_streams": lambda n, v: v is None or positive_int(n, v),
    "trt_cache_dir": path_option,
    "model_cache_dir": lambda n, v: (p := path_option(n, v)) is None or check_writable_folder(p, n),
}


def check_backend_options(options: Mapping[str, Any]) -> None:
    """The values of the backend options every backend reads alike (threads, streams, cache
    folders); one InputError line naming the first wrong one. Unknown names are the backend's to refuse."""
    for name, value in options.items():
        check = _CHECKS.get(name)
        if check is not None:
            check(name, value)


_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


def unknown_option(error: TypeError, backend: str) -> InputError | None:
    """A backend's TypeError for an option it does not take, as one line naming it (else None: a bug)."""
    found = _UNEXPECTED.search(str(error))
    if found is None:
        return None
    return InputError(f"unknown option {found.group(1)}= for Segmenter with backend {backend!r}")
