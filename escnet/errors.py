"""Typed errors: each carries one line saying what was wrong and what was expected."""


class ESCNetInputError(ValueError):
    """Bad model input: image tensor or class list."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unreadable, truncated, wrong format, preset or keys."""
