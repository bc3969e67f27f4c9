"""Long work never looks dead: plain progress lines on a non-terminal stderr, a bar on a terminal.

The end-to-end check runs ``escnet-bench`` (tiny preset, the PyTorch reference only) in a
subprocess whose stderr is a pipe, as in a CI log, and reads the lines it printed; the same run
shows the random-init notice and records the provenance in summary.md and results.json.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

from escnet_runtime.progress import StepProgress
from rich.console import Console

LINE = re.compile(
    r"^(?P<title>[\w -]+) \[ *(?P<elapsed>\d+\.\d) s\](?: \((?P<done>\d+)/(?P<total>\d+)\))? (?P<text>.*)$"
)


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    with StepProgress("job", stream=stream) as progress:
        progress.note("preparing")
        progress.start(2)
        progress.step("first")
        progress.step("second")
        progress.print("a message")
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line)["text"] for line in lines[:3]] == ["preparing", "first", "second"]
    assert [LINE.match(line)["done"] for line in lines[1:3]] == ["1", "2"]
    assert all(LINE.match(line)["total"] == "2" for line in lines[1:3])
    assert lines[3] == "a message"


def test_update_lines_are_throttled_but_the_last_is_printed():
    stream = io.StringIO()
    with StepProgress("train", total=100, stream=stream, min_interval=3600) as progress:
        for i in range(1, 101):
            progress.update(i, f"step {i}")
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line)["text"] for line in lines] == ["step 1", "step 100"]


def test_a_terminal_gets_the_bar_not_lines():
    stream = io.StringIO()
    progress = StepProgress("job", stream=stream, plain=False)
    assert progress._bar is not None
    with progress:
        progress.start(1)
        progress.step("only")
    assert not any(LINE.match(line) for line in stream.getvalue().splitlines())


def test_export_steps_print_lines():
    from escnet_export.progress import steps

    stream = io.StringIO()
    with steps(Console(file=stream), "escnet-export onnx") as step:
        step("loading the model")
        step("exporting image_encoder.onnx")
    texts = [LINE.match(line)["text"] for line in stream.getvalue().splitlines()]
    assert texts == ["loading the model", "exporting image_encoder.onnx", "done"]


def test_bench_prints_lines_and_says_random_init(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from escnet_bench.cli import main; main()", "--preset", "tiny"]
    cmd += ["--backends", "torch", "--classes", "2", "--iters", "1", "--warmup", "0", "--seed", "3"]
    cmd += ["--no-isolated-memory", "--out", str(out), "--artifacts", str(tmp_path / "art")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    steps = [m for m in map(LINE.match, lines) if m and m["title"] == "escnet-bench" and m["done"]]
    total = int(steps[0]["total"])
    assert [int(m["done"]) for m in steps] == list(range(1, total + 1))
    assert [float(m["elapsed"]) for m in steps] == sorted(float(m["elapsed"]) for m in steps)
    assert any("reference: T=2 B=1" in m["text"] for m in steps)
    notices = [line for line in lines if "random init, seed 3" in line]
    assert len(notices) == 1 and "noise" in notices[0]
    summary = (out / "summary.md").read_text()
    assert "random init, seed 3" in summary and "noise" in summary
    assert json.loads((out / "results.json").read_text())["weights"] == {
        "weights": "random init, seed 3",
        "random_init": True,
    }
