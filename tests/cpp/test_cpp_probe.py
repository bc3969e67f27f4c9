"""The C++ vs Python probe (``python -m escnet_bench.probes.baked_cpp``) with the real C++ tool:
one call at a time and rounds of calls at once from threads, on both runtimes."""

import importlib
import json
import sys

import pytest
from PIL import Image
from support.artifacts import BAKED_NAMES, tiny_baked

pytest.importorskip("openvino")


def test_the_probe_times_cpp_and_python_one_and_several_at_once(tool, tmp_path_factory, tmp_path, monkeypatch, capsys):
    baked, artifacts, _ = tiny_baked(tmp_path_factory)
    image, classes = tmp_path / "image.png", tmp_path / "classes.txt"
    Image.new("RGB", (64, 48), (120, 30, 200)).save(image)
    classes.write_text("\n".join(BAKED_NAMES) + "\n", encoding="utf-8")
    args = ["--artifacts", str(artifacts), "--image", str(image), "--classes-file", str(classes), "--counts", "5"]
    args += ["--baked", f"5={baked}", "--cpp-tool", str(tool), "--repeat", "2", "--concurrent", "3"]
    monkeypatch.setattr(sys, "argv", ["baked_cpp", *args, "--cache", str(tmp_path / "cache")])
    with pytest.raises(SystemExit) as e:
        importlib.import_module("escnet_bench.probes.baked_cpp").main()
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    (row,) = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    assert set(row) == {"classes", "python", "baked_ort", "baked_cpp_ov", "python_ov", "cpp_ov"}
    for key in ("python_ov", "cpp_ov"):  # the OpenVINO runs, also three calls at once
        assert row[key]["seconds"] > 0 and row[key]["concurrent_images_per_s"] > 0, row
    assert all("concurrent_images_per_s" not in row[k] for k in ("python", "baked_ort", "baked_cpp_ov"))
    assert "| classes | runtime | s / image | peak RSS GiB | 3 at once, images / s |" in out.out
    assert "| 5 | cpp_ov |" in out.out and "| 5 | baked_ort |" in out.out
