"""What the probes' command lines share: the typer app, one-line errors, checks before any child starts.

A bad argument is one line on stderr, ``python -m escnet_bench.probes.NAME: error: ...``, and exit
code 2 (typer's own checks and the ones here, through ``escnet_runtime.cli_usage.run_app``); a
child process that fails mid-run is one line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from escnet_runtime.cli_usage import CliError, run_app

from escnet_bench.child import ChildError
from escnet_bench.options import MAX_CLASSES, RUNTIME_BACKENDS, OptionError, parse_int_list

# The arguments several probes take, declared once.
ArtifactsArgument = Annotated[Path, typer.Argument(help="An exported artifacts folder.")]
ArtifactsOption = Annotated[Path, typer.Option("--artifacts", help="An exported artifacts folder.")]
ClassesFile = Annotated[Path, typer.Option("--classes-file", help="Class names, one per line.")]
Classes = Annotated[int, typer.Option("--classes", min=1, max=MAX_CLASSES, help="Class names embedded (T).")]


def probe_app(doc: str) -> typer.Typer:
    """A one-command app; ``--help`` shows the probe's docstring."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=doc)


def run_probe(app: typer.Typer, module: str) -> None:
    """Run ``app`` as ``python -m MODULE`` (the name its errors and ``--help`` show) and exit."""
    run_app(app, f"python -m {module}")


def bad(hint: str, message: str) -> typer.BadParameter:
    """A user's mistake in argument ``hint`` (e.g. ``'--classes'``): one line, exit 2."""
    return typer.BadParameter(message, param_hint=hint)


def failed(message: str | ChildError) -> CliError:
    """A measurement that failed mid-run (e.g. a child's :class:`ChildError`): one line, exit 1."""
    return CliError(" ".join(str(message).split()))


def check_artifacts(folder: Path, hint: str = "'ARTIFACTS'") -> Path:
    """An artifacts folder whose manifest and hashes check out (before any child opens it)."""
    from escnet_runtime import ManifestError, load_manifest

    try:
        load_manifest(folder, verify=True)
    except ManifestError as e:
        raise bad(hint, str(e)) from None
    return folder


def check_backends(text: str, hint: str = "'--backends'") -> list[str]:
    """``"ort-cpu,ov-cpu"`` -> names in order, each one of escnet_runtime's backends."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",")))
    unknown = [n for n in names if n not in RUNTIME_BACKENDS]
    if not names or unknown:
        found = f"unknown backend {unknown[0]!r}" if unknown else "no backend"
        raise bad(hint, f"{found}; expected some of {', '.join(RUNTIME_BACKENDS)}, comma-separated")
    return names


def check_counts(text: str, hint: str = "'--counts'", hi: int = MAX_CLASSES) -> list[int]:
    """``"20,150"`` -> sorted distinct class counts in [1, hi]."""
    try:
        return list(parse_int_list(text, hint.strip("'-"), 1, hi))
    except OptionError as e:
        raise bad(hint, str(e).split(": ", 1)[-1]) from None
