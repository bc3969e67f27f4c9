"""The PyTorch peers a CPU user would pick (bf16 autocast, torch.compile) and the int8 contenders."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch


def test_torch_bf16_runs_under_cpu_autocast(tiny_model):
    from escnet_bench.contenders.torch_eager import TorchContender
    from escnet_bench.inputs import make_inputs

    peer = TorchContender("torch-bf16", tiny_model, class_chunk=2)
    assert peer.spec.device == "cpu" and peer.spec.precision == "bf16"
    assert peer.details()["autocast"] == "torch.autocast('cpu', torch.bfloat16)"
    inputs = make_inputs(classes=3, batch=1, seed=1)
    out = peer.graph_outputs("image_encoder", peer.graph_fn("image_encoder", {"image": _pixels(tiny_model)})())
    eager = tiny_model.encode_image(torch.from_numpy(_pixels(tiny_model)))
    diff = np.abs(out["dense_features"] - eager.dense.detach().numpy()).max()
    assert 0 < diff < 0.5  # bf16 arithmetic: close to fp32, not equal to it
    peer.set_vocabulary(inputs.names)
    labels = peer.segment_fn(inputs.images)()
    assert labels.shape == inputs.images.shape[:3] and labels.max() < 3


def _pixels(model) -> np.ndarray:
    return (
        np.random.default_rng(0)
        .standard_normal((1, 3, model.config.image_size, model.config.image_size))
        .astype(np.float32)
    )


def test_cpu_compile_peers_are_cpu_and_the_gpu_one_is_apart():
    from escnet_bench.contenders.torch_eager import COMPILED, TORCH_SPECS
    from escnet_bench.options import ALL_BACKENDS

    assert {"torch-compile", "torch-compile-bf16", "torch-cuda-compile"} == COMPILED
    assert TORCH_SPECS["torch-compile"].device == "cpu" and TORCH_SPECS["torch-compile-bf16"].precision == "bf16"
    assert TORCH_SPECS["torch-cuda-compile"].device == "cuda"
    assert {"torch-bf16", "ort-cpu-int8", "ov-cpu-int8"} <= set(ALL_BACKENDS)


@pytest.mark.slow
def test_torch_compile_times_compilation_apart(tiny_model):
    """Compiling happens while inputs are staged; the timed callable then runs compiled code only."""
    from escnet_bench.contenders.torch_eager import TorchContender

    peer = TorchContender("torch-compile", tiny_model)
    run = peer.graph_fn("image_encoder", {"image": _pixels(tiny_model)})
    compiled = dict(peer.compile_s)
    assert len(compiled) == 1 and next(iter(compiled.values())) > 0
    run()
    assert peer.compile_s == compiled  # the same shapes compile once
    assert peer.details()["compile_s"] == compiled


def test_int8_contender_without_a_quantised_folder_says_how_to_make_one(tmp_path):
    from escnet_bench.contenders.base import ContenderUnavailable
    from escnet_bench.contenders.runtime import RuntimeContender, int8_folder

    artifacts = tmp_path / "artifacts"
    assert int8_folder(artifacts) == tmp_path / "artifacts-int8"
    with pytest.raises(ContenderUnavailable, match="escnet-export quantize --artifacts"):
        RuntimeContender("ort-cpu-int8", artifacts, batch_size=1)


def test_int8_contender_refuses_an_fp32_folder_in_the_int8_place(tmp_path_factory, tmp_path):
    from escnet_bench.contenders.base import ContenderUnavailable
    from escnet_bench.contenders.runtime import RuntimeContender, int8_folder
    from support.artifacts import tiny_artifacts

    artifacts, _ = tiny_artifacts(tmp_path_factory)
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy)
    shutil.copytree(artifacts, int8_folder(copy))  # fp32 graphs where the int8 ones belong
    with pytest.raises(ContenderUnavailable, match="its manifest says precision fp32, not int8"):
        RuntimeContender("ort-cpu-int8", copy, batch_size=1)


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("precision_parity", ["A", "--images", "x", "--classes-file", "f", "--limit", "0"], "'--limit'"),
        ("precision_parity", ["A", "--images", "x", "--classes-file", "f", "--backends", "nope"], "unknown backend"),
        ("gates", ["A", "--data", "d", "--backends", "nope"], "unknown backend 'nope'"),
        ("gates", ["A", "--data", "d", "--held-out", "0"], "'--held-out'"),
        ("gates_weights", ["--preset", "huge"], "unknown preset 'huge'"),
    ],
)
def test_probe_usage_errors_are_one_line(module, args, message, tmp_path, monkeypatch, capsys):
    import importlib

    from escnet_runtime.cli_usage import run_app

    app = importlib.import_module(f"escnet_bench.probes.{module}").app
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "f").write_text("cat\n")
    monkeypatch.setattr(sys, "argv", [module, *args])
    with pytest.raises(SystemExit) as e:
        run_app(app, f"python -m escnet_bench.probes.{module}")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0], err


def _bench_options(tmp_path, backends: str):
    from escnet_bench.options import build_options

    return build_options(
        "tiny", backends, "3", "1", 1, 0, str(tmp_path / "artifacts"), str(tmp_path / "out"), isolated_memory=False
    )


@pytest.mark.slow
def test_torch_compile_compiles_in_a_fresh_process_first(tiny_model, tmp_path):
    """The child's cold compile times are recorded beside the bench's own (warm-cache) ones."""
    from escnet_bench.runner import run_benchmark

    result = run_benchmark(_bench_options(tmp_path, "torch-compile"), tiny_model)
    (record,) = result.backends
    assert record.status == "ok", record.reason
    fresh = record.details["compile_s_fresh_process"]
    assert set(fresh) == set(record.details["compile_s"]) and min(fresh.values()) > 0


def test_a_compiled_peer_that_kills_its_fresh_process_fails_and_the_run_goes_on(tiny_model, tmp_path, monkeypatch):
    """What the bench does with the fresh process's verdict (the verdict itself: test_child.py,
    a child killed by SIGABRT): the compiled peer is failed with that line, never run in the
    bench's process, and the next backend runs."""
    from escnet_bench import runner
    from escnet_bench.compile_check import CompileCheck

    line = "torch.compile failed in a fresh process, so it was not run in the bench's own (child killed by SIGABRT)"
    monkeypatch.setattr(runner, "compile_in_child", lambda _request: CompileCheck(line, {}))
    result = runner.run_benchmark(_bench_options(tmp_path, "torch-compile-bf16,torch"), tiny_model)
    compiled, eager = result.backends
    assert (compiled.status, compiled.reason) == ("failed", line)
    assert not [t for t in result.timings if t.backend == "torch-compile-bf16"]
    assert eager.status == "ok" and [t for t in result.timings if t.backend == "torch"]
