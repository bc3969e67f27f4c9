"""Atomic writes honour the umask (checkpoints, eval JSON, bench results) and leave nothing on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from escnet_runtime import fileio

from escnet import io_utils


@pytest.fixture(params=[0o022, 0o027, 0o002, 0o077])
def umask(request):
    prior = os.umask(request.param)
    yield request.param
    os.umask(prior)


@pytest.mark.parametrize("atomic_path", [io_utils.atomic_path, fileio.atomic_path], ids=["escnet", "runtime"])
def test_atomic_files_get_the_umask_mode(tmp_path: Path, umask: int, atomic_path) -> None:
    target = tmp_path / "sub" / "results.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert target.read_text() == "{}" and os.listdir(target.parent) == ["results.json"]


@pytest.mark.parametrize("atomic_path", [io_utils.atomic_path, fileio.atomic_path], ids=["escnet", "runtime"])
def test_a_failed_write_keeps_the_old_file(tmp_path: Path, atomic_path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]


def test_bench_results_go_through_the_atomic_writer(tmp_path: Path, umask: int) -> None:
    """escnet-bench's results.json, summary.md and schema copy are written by fileio.write_bytes_atomic."""
    import escnet_bench.outputs as outputs

    assert outputs.write_bytes_atomic is fileio.write_bytes_atomic and outputs.atomic_path is fileio.atomic_path
    fileio.write_bytes_atomic(tmp_path / outputs.RESULTS_JSON, b"{}\n")
    assert stat.S_IMODE((tmp_path / outputs.RESULTS_JSON).stat().st_mode) == 0o666 & ~umask
