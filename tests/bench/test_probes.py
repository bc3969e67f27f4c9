"""The measurement probes (ov_memory, ov_startup, baked_cpp): one-line errors, then real runs on tiny artifacts."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from support.artifacts import BAKED_NAMES, tiny_baked

PROBES = ("ov_memory", "ov_startup", "baked_cpp")


@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> tuple[Path, Path]:
    """(baked folder of the five BAKED_NAMES, artifacts folder)."""
    folder, artifacts, _ = tiny_baked(tmp_path_factory)
    return folder, artifacts


@pytest.fixture()
def classes_file(tmp_path: Path) -> Path:
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(BAKED_NAMES) + "\n", encoding="utf-8")
    return path


def _run(probe: str, args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    main = importlib.import_module(f"escnet_bench.probes.{probe}").main
    monkeypatch.setattr(sys, "argv", [probe, *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _one_error_line(probe: str, err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"python -m escnet_bench.probes.{probe}: error: "), err
    assert "Traceback" not in err and "╭" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("probe", "args", "fragment"),
    [
        ("ov_memory", [], "Missing argument 'artifacts'"),
        ("ov_memory", ["A", "--classes", "0"], "Invalid value for '--classes'"),
        ("ov_memory", ["A", "--rounds", "two"], "Invalid value for '--rounds'"),
        ("ov_memory", ["A", "--runs", "0"], "Invalid value for '--runs'"),
        ("ov_memory", ["A", "--backend", "ort-cpu"], "Invalid value for '--backend': 'ort-cpu': expected one of"),
        ("ov_startup", ["A", "--backends", "ort-cpu,tensorflow"], "unknown backend 'tensorflow'"),
        ("ov_startup", ["A", "--nope"], "No such option: --nope"),
        ("baked_cpp", ["--image", "x.png"], "Missing option '--artifacts'"),
        ("baked_cpp", ["--artifacts", "A", "--image", "I", "--classes-file", "F", "--repeat", "0"], "'--repeat'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(probe, args, fragment, monkeypatch, capsys):
    code, out, err = _run(probe, args, monkeypatch, capsys)
    assert code == 2 and out == ""
    line = _one_error_line(probe, err)
    assert fragment in line and line.endswith("--help)"), line


@pytest.mark.parametrize("probe", PROBES)
def test_a_folder_without_artifacts_is_refused_before_any_child(probe, tmp_path, classes_file, monkeypatch, capsys):
    image = tmp_path / "missing.png"
    args = {
        "ov_memory": [str(tmp_path)],
        "ov_startup": [str(tmp_path)],
        "baked_cpp": ["--artifacts", str(tmp_path), "--image", str(image), "--classes-file", str(classes_file)],
    }[probe]
    code, out, err = _run(probe, args, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert "no manifest.json" in _one_error_line(probe, err)


def test_baked_cpp_checks_every_input_first(baked, tmp_path, classes_file, monkeypatch, capsys):
    folder, artifacts = baked
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (10, 200, 30)).save(image)
    base = ["--artifacts", str(artifacts), "--image", str(image), "--classes-file", str(classes_file)]
    cases = [
        (["--image", str(tmp_path)], "is a folder, not an image file"),
        (["--classes-file", str(tmp_path / "none.txt")], "cannot read the class list"),
        (["--counts", "6"], "6 is out of range; expected 1 to 5"),
        (["--counts", "5", "--baked", f"4={folder}"], "expected COUNT=FOLDER with COUNT one of --counts [5]"),
        (["--counts", "5", "--baked", f"5={tmp_path}"], "manifest.json: unreadable manifest"),
        (["--counts", "5", "--cpp-tool", str(classes_file)], "not an executable file"),
    ]
    for extra, fragment in cases:
        code, out, err = _run("baked_cpp", [*base, *extra], monkeypatch, capsys)
        assert code == 2 and out == "", (extra, err)
        assert fragment in _one_error_line("baked_cpp", err), (extra, err)


def test_baked_cpp_measures_the_python_runtime_and_the_baked_graph(baked, tmp_path, classes_file, monkeypatch, capsys):
    folder, artifacts = baked
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (64, 48), (120, 30, 200)).save(image)
    args = ["--artifacts", str(artifacts), "--image", str(image), "--classes-file", str(classes_file)]
    args += ["--counts", "3,5", "--baked", f"5={folder}", "--repeat", "1", "--cache", str(tmp_path / "cache")]
    code, out, err = _run("baked_cpp", args, monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["classes"] for r in rows] == [3, 5]
    assert set(rows[0]) == {"classes", "python"} and set(rows[1]) == {"classes", "python", "baked_ort"}
    for row in rows:
        for key in set(row) - {"classes"}:
            assert row[key]["seconds"] > 0 and 0.01 < row[key]["peak_gib"] < 8, row
    assert "| 5 | baked_ort |" in out


def test_a_failing_cpp_tool_is_one_line_exit_1(baked, tmp_path, classes_file, monkeypatch, capsys):
    _, artifacts = baked
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    tool = shutil.which("false")
    assert tool is not None
    args = ["--artifacts", str(artifacts), "--image", str(image), "--classes-file", str(classes_file)]
    args += ["--counts", "2", "--repeat", "1", "--cpp-tool", tool, "--cache", str(tmp_path / "cache")]
    code, _, err = _run("baked_cpp", args, monkeypatch, capsys)
    assert code == 1
    assert _one_error_line("baked_cpp", err).endswith("false exited 1: no output")


def test_ov_startup_rows_per_backend(baked, monkeypatch, capsys):
    _, artifacts = baked
    code, out, err = _run(
        "ov_startup", [str(artifacts), "--backends", "ort-cpu,ov-cpu", "--classes", "3"], monkeypatch, capsys
    )
    assert code == 0, err
    rows = [
        line.split("|")[1:-1]
        for line in out.splitlines()
        if line.startswith("| ort-cpu") or line.startswith("| ov-cpu")
    ]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("ort-cpu", "-"), ("ov-cpu", "cold"), ("ov-cpu", "warm")]
    for cells in rows:
        open_embed, first, total, peak = (float(c) for c in cells[2:6])
        assert 0 < open_embed + first < total and peak > 10
    assert float(rows[1][6]) > 0  # the cold run filled the compiled-model cache


@pytest.mark.parametrize("backend", ["ov-cpu", "ov-cpu-bf16"])
def test_ov_memory_one_round(baked, backend, monkeypatch, capsys):
    _, artifacts = baked
    args = [str(artifacts), "--classes", "3", "--rounds", "1", "--runs", "2", "--backend", backend]
    code, out, err = _run("ov_memory", args, monkeypatch, capsys)
    assert code == 0, err
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| o")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("ort-cpu", "-"), (backend, "steps"), (backend, "encoders"), (backend, "all")
    ]  # fmt: skip
    assert [float(r[3]) for r in rows][0] == 1.0 and all(float(r[4]) > 10 for r in rows)
