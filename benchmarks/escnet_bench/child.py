"""A function or a program in a fresh process: its result, its peak RSS and its wall time.

The benchmark's own process keeps the PyTorch reference and every library loaded, so its RSS
says little about what one backend needs. A fresh process holds only what the work imports.
Two entry points, used by the harness (``escnet_bench.isolated``) and every probe alike:

- :func:`run_function`: calls a module-level function (JSON arguments, JSON result) in a child
  ``python -m escnet_bench.child call``; the peak is the child's own ``VmHWM`` read when the
  function returns (``ru_maxrss`` where ``/proc`` is missing).
- :func:`run_program`: runs a program (e.g. the C++ runtime's tool) under a bare interpreter,
  ``python -m escnet_bench.child exec``, that reports the program's ``ru_maxrss`` from
  ``getrusage(RUSAGE_CHILDREN)``. The kernel folds the exec-ing process's high-water into the
  program's, so the program is not started from the benchmark's crowded process: the figure is
  an upper bound by the few MiB of a bare interpreter.

A child that fails raises :class:`ChildError` with one line: what ran, its exit code and the
last line of its stderr.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any


class ChildError(RuntimeError):
    """A child process failed or ran past its time; the message is one line."""


@dataclass(frozen=True)
class FunctionRun:
    value: Any  # what the function returned (through JSON)
    peak_rss_mib: float | None  # the child's RSS high-water over its whole life
    seconds: float  # wall time from spawning the child to its exit (interpreter start and imports included)


@dataclass(frozen=True)
class ProgramRun:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mib: float | None  # the program's RSS high-water (an upper bound by a bare interpreter's)
    seconds: float  # wall time of the program, start to exit


def _maxrss_mib(who: int) -> float:
    """``ru_maxrss`` in MiB (Linux reports KiB, macOS bytes)."""
    maxrss = resource.getrusage(who).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def _target_name(fn: Callable[..., Any]) -> str:
    """``module:function`` importable by a fresh interpreter (a ``python -m`` script's real module name)."""
    module = fn.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None:
            raise ValueError(f"{fn.__qualname__}: its module is not importable (run the script with python -m)")
        module = spec.name
    if "." in fn.__qualname__ or "<" in fn.__qualname__:
        raise ValueError(f"{fn.__qualname__}: expected a module-level function")
    return f"{module}:{fn.__qualname__}"


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


def _spawn(argv: list[str], what: str, timeout_s: float | None) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ChildError(f"{what}: ran past {timeout_s} s and was stopped") from None
    return proc, time.perf_counter() - start


def _exit_words(returncode: int) -> str:
    """``exited 1``, or ``killed by SIGABRT`` for a child a signal ended (a negative return code)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited {returncode}"


def _read_answer(path: Path, proc: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    if proc.returncode != 0 or not path.is_file():
        raise ChildError(f"{what}: child {_exit_words(proc.returncode)}: {_last_line(proc.stderr)}")
    return json.loads(path.read_text(encoding="utf-8"))


def run_function(fn: Callable[..., Any], *args: Any, timeout_s: float | None = None) -> FunctionRun:
    """``fn(*args)`` in a fresh interpreter; ``fn`` is a module-level function, ``args`` and its result JSON."""
    target = _target_name(fn)
    with tempfile.TemporaryDirectory(prefix="escnet-child-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        request.write_text(json.dumps({"target": target, "args": list(args)}, default=os.fspath), encoding="utf-8")
        argv = [sys.executable, "-m", "escnet_bench.child", "call", str(request), str(answer)]
        proc, seconds = _spawn(argv, target, timeout_s)
        got = _read_answer(answer, proc, target)
    return FunctionRun(got["value"], got["peak_rss_mib"], seconds)


def run_program(cmd: Sequence[str | os.PathLike[str]], timeout_s: float | None = None) -> ProgramRun:
    """``cmd`` in a fresh process; its exit code and output are returned, not judged."""
    cmd = [os.fspath(c) for c in cmd]
    with tempfile.TemporaryDirectory(prefix="escnet-child-") as tmp:
        answer = Path(tmp) / "answer.json"
        argv = [sys.executable, "-m", "escnet_bench.child", "exec", str(answer), *cmd]
        proc, _ = _spawn(argv, Path(cmd[0]).name, timeout_s)
        got = _read_answer(answer, proc, Path(cmd[0]).name)
    return ProgramRun(got["returncode"], proc.stdout, proc.stderr, got["peak_rss_mib"], got["seconds"])


def _call(request_path: str, answer_path: str) -> None:
    """Child side of :func:`run_function`."""
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    module, name = request["target"].split(":")
    value = getattr(import_module(module), name)(*request["args"])
    from escnet_bench.memory import rss_peak_mib  # no reset happened in this process: its lifetime high-water

    peak = rss_peak_mib()
    answer = {"value": value, "peak_rss_mib": peak if peak is not None else _maxrss_mib(resource.RUSAGE_SELF)}
    Path(answer_path).write_text(json.dumps(answer), encoding="utf-8")


def _exec(answer_path: str, cmd: list[str]) -> None:
    """Child side of :func:`run_program`: the program's output passes through; its exit code is the answer's."""
    start = time.perf_counter()
    try:
        code = subprocess.run(cmd, check=False).returncode
    except OSError as e:
        sys.exit(f"cannot run {cmd[0]}: {e.strerror or e}")
    seconds = time.perf_counter() - start
    answer = {"returncode": code, "peak_rss_mib": _maxrss_mib(resource.RUSAGE_CHILDREN), "seconds": seconds}
    Path(answer_path).write_text(json.dumps(answer), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1] == "call":
        _call(sys.argv[2], sys.argv[3])
    else:
        _exec(sys.argv[2], sys.argv[3:])
