"""Pickled weights the safe loader refuses: one line of ours, nothing of torch's, and no code run."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from escnet import CheckpointError
from escnet.state_dict import read_state_dict

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


class _Code:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _torch_save(path: Path, obj: object, protocol: int, zipped: bool = True) -> Path:
    torch.save(obj, path, pickle_protocol=protocol, _use_new_zipfile_serialization=zipped)
    return path


def _pickle_dump(path: Path, obj: object, protocol: int) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


WRITERS = {
    "torch-p2": lambda p, o: _torch_save(p, o, 2),
    "torch-p4": lambda p, o: _torch_save(p, o, 4),
    "torch-legacy-p4": lambda p, o: _torch_save(p, o, 4, zipped=False),
    "pickle-p0": lambda p, o: _pickle_dump(p, o, 0),
    "pickle-p4": lambda p, o: _pickle_dump(p, o, 4),
    "pickle-p5": lambda p, o: _pickle_dump(p, o, 5),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_code_is_named_and_never_run_and_torch_stays_quiet(writer: str, tmp_path: Path, capfd) -> None:
    marker = tmp_path / "ran"
    path = WRITERS[writer](tmp_path / "w.pt", {"x": torch.zeros(1), "y": _Code(f"touch {marker}")})
    with warnings.catch_warnings(record=True) as caught, pytest.raises(CheckpointError) as e:
        warnings.simplefilter("always")
        read_state_dict(path)
    text = str(e.value)
    assert "\n" not in text and "holds code" in text and "posix.system" in text and "not loaded" in text, text
    assert "weights_only" not in text and "Re-running" not in text
    assert caught == [] and capfd.readouterr().err == ""  # torch's "Detected pickle protocol" is not shown
    assert not marker.exists()


def test_a_protocol_the_safe_loader_cannot_read_is_said_so(tmp_path: Path, capfd) -> None:
    path = _torch_save(tmp_path / "p4.pt", {"x": torch.zeros(1)}, 4)
    with pytest.raises(CheckpointError, match="is pickled with protocol 4") as e:
        read_state_dict(path)
    assert "\n" not in str(e.value) and capfd.readouterr().err == ""


def test_damage_is_one_line_too(tmp_path: Path) -> None:
    good = _torch_save(tmp_path / "good.pt", {"x": torch.zeros(4)}, 2).read_bytes()
    for i, data in enumerate((b"\x80\x04garbage", os.urandom(300), good[: len(good) // 2], b"")):
        path = tmp_path / f"bad{i}.pt"
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            read_state_dict(path)
        assert "\n" not in str(e.value)


def test_a_state_dict_still_loads(tmp_path: Path) -> None:
    path = _torch_save(tmp_path / "ok.pt", {"model": {"module.x": torch.ones(2)}}, 2)
    assert list(read_state_dict(path)) == ["x"]


def test_the_cli_prints_only_our_line(tmp_path: Path) -> None:
    """escnet-train --resume over a run whose checkpoint is a protocol-4 pickle holding code."""
    marker = tmp_path / "ran"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _pickle_dump(run / "checkpoints" / "last.pt", {"y": _Code(f"touch {marker}")}, 4)
    args = ["--data", str(tmp_path / "data"), "--out", str(run), "--resume", "--preset", "tiny"]
    r = subprocess.run(
        [sys.executable, "-m", "escnet.training.cli", *args], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: training checkpoint ") and "holds code" in lines[0], r.stderr
    assert "posix.system" in lines[0] and "Detected pickle protocol" not in r.stderr
    assert not marker.exists()
