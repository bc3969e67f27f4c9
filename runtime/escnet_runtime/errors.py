"""The runtime's errors: each says in one line what was wrong and what was expected."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: an image, a vocabulary, an argument."""


class BackendError(RuntimeError):
    """A backend that cannot run as requested (provider missing, silent fall-back, no TensorRT)."""


class OutputError(InputError):
    """An output that could not be written (full disk, no permission); names the file."""
