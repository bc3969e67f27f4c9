"""escnet_bench.child: a function or a program in a fresh process, its result and its peak RSS."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from escnet_bench.child import ChildError, run_function, run_program

MIB = 2**20


@pytest.fixture(autouse=True)
def _children_import_this_file(monkeypatch):
    """The children import the functions below from this file, as they would a probe's module."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))


def hold_mib(mib: int) -> int:
    """Child side of the tests: touch ``mib`` MiB, return how many bytes were held."""
    block = bytearray(mib * MIB)
    block[::4096] = b"x" * len(block[::4096])  # every page written: resident
    return len(block)


def refuse(message: str) -> None:
    raise ValueError(message)


def test_function_result_and_peak_follow_the_work():
    small = run_function(hold_mib, 1)
    big = run_function(hold_mib, 200)
    assert (small.value, big.value) == (MIB, 200 * MIB)
    assert small.peak_rss_mib is not None and big.peak_rss_mib is not None
    # the child's own high-water: the parent (pytest, torch loaded) is not folded in
    assert small.peak_rss_mib < 150
    assert 190 < big.peak_rss_mib - small.peak_rss_mib < 260
    assert big.seconds > 0


def test_a_failing_function_is_one_line_with_its_error():
    with pytest.raises(ChildError) as e:
        run_function(refuse, "no such vocabulary")
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{__name__}:refuse: child exited 1")
    assert text.endswith("ValueError: no such vocabulary")


def abort(_reason: str) -> None:
    """Child side: end the process the way a heap corruption in native code does (SIGABRT)."""
    print("double free or corruption (!prev)", file=sys.stderr, flush=True)
    os.abort()


def test_a_child_killed_by_a_signal_is_one_line_naming_the_signal():
    with pytest.raises(ChildError) as e:
        run_function(abort, "native code")
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{__name__}:abort: child killed by SIGABRT")
    assert text.endswith("double free or corruption (!prev)")


def test_only_module_level_functions_run():
    with pytest.raises(ValueError, match="module-level"):
        run_function(lambda: 1)


def test_program_exit_code_output_and_peak():
    code = "import sys; b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('out'); sys.exit(3)"
    run = run_program([sys.executable, "-c", code])
    assert run.returncode == 3 and run.stdout == "out\n"
    assert run.peak_rss_mib is not None and 150 < run.peak_rss_mib < 260
    with pytest.raises(ChildError, match="cannot run no-such-tool"):
        run_program(["no-such-tool", "--help"])


def test_a_child_past_its_time_is_stopped():
    with pytest.raises(ChildError, match="ran past 0.5 s"):
        run_program([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)


def test_the_parents_memory_is_not_counted():
    """A program exec'd straight from a large process inherits its high-water; the helper's figure does not."""
    held = hold_mib(300)  # this test process's RSS high-water is now above 300 MiB
    run = run_program(["true"])
    assert held == 300 * MIB and run.returncode == 0
    assert run.peak_rss_mib is not None and run.peak_rss_mib < 100
