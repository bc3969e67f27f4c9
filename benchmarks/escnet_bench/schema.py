"""The JSON schema of a run's results (``bench_result.schema.json``, shipped with the package)
and its validation. A result is validated before anything is written."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "bench_result.schema.json"


class SchemaError(ValueError):
    """A result that does not match the schema (a bug in the harness, never the user's input)."""


@cache
def load_schema() -> dict[str, Any]:
    """The schema, read from the installed package."""
    text = resources.files("escnet_bench").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def validate_result(data: dict[str, Any]) -> None:
    """Raise :class:`SchemaError` naming the first offending path if ``data`` does not validate."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise SchemaError(f"result does not match {SCHEMA_FILE} at {where}: {first.message} ({len(errors)} error(s))")
