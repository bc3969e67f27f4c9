"""Errors that reach the user as one line and exit code 2 (their mistake or their machine)."""

from __future__ import annotations

EXIT_USER_ERROR = 2  # bad input, missing tool or device: one line, no traceback
EXIT_PARITY_FAILED = 1  # the export ran but a graph is over tolerance


class ExportError(RuntimeError):
    """A user-facing failure: bad preset, unreadable checkpoint, unwritable folder, bad profile."""


class MissingRequirementError(ExportError):
    """Something the command needs is not on this machine (TensorRT, a GPU, an optional package)."""
