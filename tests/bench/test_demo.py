"""``escnet-demo``: synthetic scenes -> train tiny -> export -> segment held-out scenes with the runtime."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner


def test_refuses_a_folder_that_holds_something(tmp_path):
    from escnet_bench.commands.demo import app

    (tmp_path / "old.txt").write_text("x")
    result = CliRunner().invoke(app, ["--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("escnet-demo: error: ") and "not empty" in lines[0]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    """Two training steps only (the figures in the README come from the default 400): the wiring, not the mIoU."""
    out = tmp_path / "demo"
    cmd = [sys.executable, "-c", "from escnet_bench.commands.demo import main; main()", "--out", str(out)]
    cmd += ["--iters", "2", "--num-train", "4", "--num-val", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(f"{out / 'data' / 'images' / 'val'}/") and " -> " in lines[0], proc.stdout
    assert re.fullmatch(r"held-out image mIoU \d+\.\d; held-out split \(2 images\) mIoU \d+\.\d", lines[1])
    assert lines[2].startswith("trained 2 steps in ")
    assert (out / "artifacts" / "manifest.json").is_file() and (out / "run" / "model.safetensors").is_file()
    assert re.search(r"escnet-demo \[ *\d+\.\d s\] \(4/4\) segmenting", proc.stderr)
