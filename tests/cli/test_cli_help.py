"""``--help`` of every console script is instant: no torch (or other heavy library) imported for it.

Each script's ``--help`` runs in a fresh subprocess. The checks are robust to a busy machine but
can fail: the heavy libraries it must not import are listed, and its CPU time (not wall time,
which other processes inflate) must stay under 2 s; the wall time gets a margin scaled by load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.metadata import distribution

import pytest

HEAVY = ("torch", "torchvision", "open_clip", "segment_anything", "onnx", "onnxruntime", "matplotlib", "tensorrt")
LIMIT_S = 2.0

PROBE = """
import json, resource, sys
from importlib.metadata import EntryPoint
name, value, heavy = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ep = EntryPoint(name=name, value=value, group="console_scripts")
sys.argv = [name, "--help"]
try:
    ep.load()()
    code = 0
except SystemExit as e:
    code = e.code or 0
use = resource.getrusage(resource.RUSAGE_SELF)
heavy = [m for m in heavy if m in sys.modules]
print("\\n" + json.dumps({"code": code, "cpu_s": use.ru_utime + use.ru_stime, "heavy": heavy}))
"""


def _scripts() -> list[tuple[str, str]]:
    eps = distribution("escnet").entry_points
    return sorted((ep.name, ep.value) for ep in eps if ep.group == "console_scripts")


def test_every_console_script_is_listed():
    names = {name for name, _ in _scripts()}
    assert {"escnet-bench", "escnet-export", "escnet-segment", "escnet-train", "escnet-eval", "escnet-info"} <= names


@pytest.mark.parametrize(("name", "target"), _scripts())
def test_help_is_instant(name, target):
    env = {**os.environ, "COLUMNS": "100"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, name, target, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert "Usage" in proc.stdout and "--help" in proc.stdout
    assert report["heavy"] == [], f"{name} --help imports {report['heavy']}"
    assert report["cpu_s"] < LIMIT_S, f"{name} --help took {report['cpu_s']:.2f} s of CPU"
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    assert wall < LIMIT_S * max(1.0, load) + 1.0, f"{name} --help took {wall:.2f} s wall (load {load:.1f} per core)"
