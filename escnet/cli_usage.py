"""One-line usage errors for the console scripts (Typer's own are multi-line boxes).

Used by escnet-info and escnet-train.
"""

# Twin of escnet_runtime.cli_usage, kept alike: escnet and the runtime may not import each other.

from __future__ import annotations

import sys

import typer

try:
    from typer import TyperException as CliError  # typer >= 0.20 vendors click; its errors derive from this
except ImportError:  # older typer: click's own
    from click import ClickException as CliError

EXIT_USAGE = 2


def run_app(app: typer.Typer, prog: str) -> None:
    """Run ``app`` as the console script ``prog`` and exit with its code. A bad option value, an
    unknown option or a missing argument is one line on stderr, ``PROG: error: ...``, exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name=prog, standalone_mode=False)
    except CliError as e:  # a usage error (bad value, unknown option, missing argument) has a context
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            sys.stderr.write(ctx.get_help() + "\n")  # the command alone: its help, as before
            sys.exit(EXIT_USAGE)
        where, code = ctx.command_path if ctx is not None else prog, getattr(e, "exit_code", EXIT_USAGE)
        hint = f" (see {where} --help)" if code == EXIT_USAGE else ""
        sys.stderr.write(f"{where}: error: {' '.join(e.format_message().split())}{hint}\n")
    except typer.Abort:
        sys.stderr.write(f"{prog}: aborted\n")
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
