"""Typed errors: each carries one line saying what was wrong and what was expected."""


class ESCNetInputError(ValueError):
    """Bad model input: image tensor or class list."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unreadable, truncated, wrong format, preset or keys."""


class ConfigError(ValueError):
    """A model config with a wrong type, an out-of-range value or inconsistent sizes."""
