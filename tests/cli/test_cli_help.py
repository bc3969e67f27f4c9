"""``--help`` of every console script is instant: no torch (or other heavy library) imported for it.

Each script's ``--help`` runs in a fresh process (``escnet_bench.child``; child side: ``help_child``).
The checks are robust to a busy machine but can fail: the heavy libraries it must not import are
listed, and its CPU time (not wall time, which other processes inflate) must stay under 2 s; the
wall time gets a margin scaled by load.
"""

from __future__ import annotations

import os
from importlib.metadata import distribution
from pathlib import Path

import pytest
from escnet_bench.child import run_function
from help_child import console_help

HEAVY = ("torch", "torchvision", "open_clip", "segment_anything", "onnx", "onnxruntime", "matplotlib", "tensorrt")
LIMIT_S = 2.0


def _scripts() -> list[tuple[str, str]]:
    eps = distribution("escnet").entry_points
    return sorted((ep.name, ep.value) for ep in eps if ep.group == "console_scripts")


def test_every_console_script_is_listed():
    names = {name for name, _ in _scripts()}
    assert {"escnet-bench", "escnet-export", "escnet-segment", "escnet-train", "escnet-eval", "escnet-info"} <= names


@pytest.mark.parametrize(("name", "target"), _scripts())
def test_help_is_instant(name, target, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    here = str(Path(__file__).parent)  # the child imports help_child from here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    run = run_function(console_help, name, target, list(HEAVY), timeout_s=120)
    report = run.value
    assert report["code"] == 0
    assert "Usage" in report["stdout"] and "--help" in report["stdout"]
    assert report["heavy"] == [], f"{name} --help imports {report['heavy']}"
    assert report["cpu_s"] < LIMIT_S, f"{name} --help took {report['cpu_s']:.2f} s of CPU"
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    wall = run.seconds
    assert wall < LIMIT_S * max(1.0, load) + 1.0, f"{name} --help took {wall:.2f} s wall (load {load:.1f} per core)"
