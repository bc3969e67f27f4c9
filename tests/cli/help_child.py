"""Child side of ``test_cli_help``: one console script's ``--help``, run in a fresh process by escnet_bench.child."""

from __future__ import annotations

import contextlib
import io
import resource
import sys
from importlib.metadata import EntryPoint
from typing import Any


def console_help(name: str, value: str, heavy: list[str]) -> dict[str, Any]:
    """Run entry point ``value`` as ``name --help``: its exit code and output, the CPU seconds this
    process has used, and which of the ``heavy`` modules it imported."""
    sys.argv = [name, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            EntryPoint(name=name, value=value, group="console_scripts").load()()
            code = 0
        except SystemExit as e:
            code = e.code or 0
    use = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "code": code,
        "stdout": out.getvalue(),
        "cpu_s": use.ru_utime + use.ru_stime,
        "heavy": [m for m in heavy if m in sys.modules],
    }
