"""`pip install ./runtime`: the escnet-runtime distribution in a fresh virtual environment (no
system site-packages), with its real dependencies from the package index, and no torch.

It segments an image with the tiny artifacts exported beforehand (by the toolkit, here) through
its own `escnet-segment`, and the labels equal the toolkit's in-process runtime.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import Segmenter
from PIL import Image
from support.artifacts import tiny_artifacts

pytestmark = pytest.mark.slow

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
CLASSES = ["wall", "sky", "tree", "person"]


def run(cmd: list, cwd: Path, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """In ``cwd``, away from the source tree (``python -c`` would import its folders from the cwd)."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd, **kw)


def test_runtime_distribution_installs_without_torch_and_segments(tmp_path_factory, tmp_path):
    artifacts = tiny_artifacts(tmp_path_factory)[0]
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", venv], tmp_path).returncode == 0
    py = venv / "bin" / "python"
    proc = run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", RUNTIME], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    probe = "import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) is not None for m in "
    probe += "('torch', 'torchvision', 'open_clip', 'escnet', 'escnet_export', 'escnet_runtime')}))"
    found = json.loads(run([py, "-c", probe], tmp_path).stdout)
    assert found == {**dict.fromkeys(("torch", "torchvision", "open_clip", "escnet", "escnet_export"), False),
                     "escnet_runtime": True}  # fmt: skip
    start = time.perf_counter()
    assert run([py, "-c", "import escnet_runtime, escnet_runtime.cli"], tmp_path).returncode == 0
    print(f"escnet_runtime import in a fresh process: {time.perf_counter() - start:.2f} s")

    image = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    cmd = [venv / "bin" / "escnet-segment", tmp_path / "photo.png", "--artifacts", artifacts]
    cmd += ["--classes", ",".join(CLASSES), "--out", tmp_path / "out"]
    proc = run(cmd, tmp_path, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = np.array(Image.open(tmp_path / "out" / "photo.labels.png"))
    expected = Segmenter(artifacts, disk_cache=False).set_vocabulary(CLASSES).segment(image).labels
    np.testing.assert_array_equal(labels, expected)
