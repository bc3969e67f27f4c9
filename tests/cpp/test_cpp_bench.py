"""The C++ runtime as a bench contender (cpp-cpu, cpp-cpu-bf16): escnet-bench times libescnet's C
API end to end beside PyTorch and judges its labels by the same gate, the gates probe opens it, and
a missing library is a skip with its reason, or one line and exit 2 when named by --cpp-lib."""

from __future__ import annotations

import json

import numpy as np
import pytest
from escnet_bench.cli import app
from escnet_bench.schema import validate_result
from typer.testing import CliRunner

pytest.importorskip("openvino")
runner = CliRunner()
LIBRARY = "libescnet.so"


@pytest.fixture(scope="module")
def cpp_run(tmp_path_factory, cpp_build):
    """One tiny run: torch and cpp-cpu side by side at 3 classes; cpp-cpu-int8 has no int8 folder."""
    root = tmp_path_factory.mktemp("bench-cpp")
    args = ["--preset", "tiny", "--backends", "torch,cpp-cpu,cpp-cpu-int8", "--classes", "3", "--iters", "2"]
    args += ["--warmup", "0", "--artifacts", str(root / "artifacts"), "--out", str(root / "out")]
    args += ["--cpp-lib", str(cpp_build / LIBRARY)]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root, json.loads((root / "out" / "results.json").read_text())


def test_cpp_cpu_is_timed_end_to_end_and_gated_on_labels(cpp_run, cpp_build):
    root, data = cpp_run
    validate_result(data)
    by = {b["name"]: b for b in data["backends"]}
    cpp = by["cpp-cpu"]
    assert cpp["status"] == "ok", cpp
    assert cpp["details"]["library"] == str((cpp_build / LIBRARY).resolve())
    assert cpp["details"]["weights_precision"] == "fp32" and cpp["details"]["precision_hint"] == "f32"
    assert isinstance(cpp["details"]["class_chunk"], int)  # the manifest's chunk, not "all"
    stages = {t["stage"] for t in data["timings"] if t["backend"] == "cpp-cpu"}
    assert {"end_to_end", "text_cold", "text_warm_disk"} <= stages
    assert not stages & {"image_encoder", "text_encoder", "decoder"}  # the C API has no per-graph call
    assert not [p for p in data["parity"] if p["backend"] == "cpp-cpu"]
    (task,) = [t for t in data["task_parity"] if t["backend"] == "cpp-cpu"]
    assert task["agreement"] >= 0.999 and task["gate"] is True, task


def test_cpp_int8_without_its_folder_is_skipped_with_the_reason(cpp_run):
    _, data = cpp_run
    (int8,) = [b for b in data["backends"] if b["name"] == "cpp-cpu-int8"]
    assert int8["status"] == "skipped" and "escnet-export quantize" in int8["reason"], int8


def test_a_missing_default_library_is_a_skip(cpp_run, tmp_path, monkeypatch):
    """Without --cpp-lib the contender looks at build/cpp/libescnet.so under the working folder."""
    from escnet_bench.contenders.base import ContenderUnavailable
    from escnet_bench.contenders.cpp import CppContender

    root, _ = cpp_run
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ContenderUnavailable, match="no C\\+\\+ runtime library at build/cpp/libescnet.so"):
        CppContender("cpp-cpu", root / "artifacts", None)


def test_a_named_library_that_is_missing_is_one_line_exit_2(tmp_path):
    args = ["--preset", "tiny", "--backends", "cpp-cpu", "--cpp-lib", str(tmp_path / "nope.so")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "nope.so" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_cpp_bf16_labels_and_the_segmenter_binding(cpp_run, cpp_build):
    """cpp-cpu-bf16 opens on the fp32 folder; the binding refuses a wrong image in one line."""
    from escnet_bench.contenders.cpp import CppContender
    from escnet_bench.cpp_library import CppError

    root, _ = cpp_run
    contender = CppContender("cpp-cpu-bf16", root / "artifacts", cpp_build / LIBRARY, class_chunk=2)
    try:
        assert contender.details()["precision_hint"] == "bf16" and contender.details()["class_chunk"] == 2
        contender.set_vocabulary(["sky", "grass", "a red car"])
        images = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
        labels = contender.segment_fn(images)()
        assert labels.shape == (2, 40, 56) and labels.min() >= 0 and labels.max() < 3
        with pytest.raises(CppError) as err:
            contender.seg.segment(np.zeros((1, 0, 8, 3), dtype=np.uint8))
        assert "\n" not in str(err.value) and str(err.value)
    finally:
        contender.close()


def test_the_gates_probe_judges_a_cpp_backend(cpp_run, cpp_build, tmp_path, capsys):
    """On random tiny weights no pixel is confident: the row is printed, the verdict not judged."""
    from escnet_bench.probes.gates import judge_all

    from escnet.data.synthetic import SyntheticConfig, generate

    root, _ = cpp_run
    data = tmp_path / "synthetic"
    generate(data, SyntheticConfig(num_train=0, num_val=2, size=48, seed=3))
    code = judge_all(root / "artifacts", data, None, ["cpp-cpu-bf16"], held_out=2, cpp_lib=cpp_build / LIBRARY)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "cpp-cpu-bf16" in out and "skipped" not in out, out
