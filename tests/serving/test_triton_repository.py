"""`escnet-export triton`: the repository it writes, every config.pbtxt parsed back with
tritonclient's model_config_pb2 (google.protobuf text_format), and its refusals.

The GPU layout (--bls: onnxruntime_onnx / tensorrt_plan models + BLS) is written and validated
here; serving it needs a GPU tritonserver with those backends, which this machine does not have.
"""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from escnet_export.triton.config import parameters, read_config
from escnet_runtime import load_manifest
from support.artifacts import tiny_artifacts
from tritonclient.grpc import model_config_pb2 as mc


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def export_triton(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", "triton", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cpu_repository(artifacts, tmp_path):
    repo = tmp_path / "repo"
    proc = export_triton("--artifacts", str(artifacts), "--out", str(repo), "--max-batch", "8", "--instances", "2")
    assert proc.returncode == 0, proc.stderr
    cfg = read_config(repo / "escnet" / "config.pbtxt")
    assert cfg.name == "escnet" and cfg.backend == "python" and cfg.max_batch_size == 8
    inputs = {t.name: (t.data_type, list(t.dims), t.optional) for t in cfg.input}
    assert inputs == {"image": (mc.TYPE_UINT8, [-1, -1, 3], False), "classes": (mc.TYPE_UINT8, [-1], True)}
    outputs = {t.name: (t.data_type, list(t.dims)) for t in cfg.output}
    assert outputs == {"labels": (mc.TYPE_INT32, [-1, -1]), "class_names": (mc.TYPE_UINT8, [-1])}
    assert cfg.HasField("dynamic_batching")
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(mc.ModelInstanceGroup.KIND_CPU, 2)]
    params = parameters(cfg)
    assert params["backend"] == "ort-cpu" and json.loads(params["vocabulary"]) == []
    copied = repo / "escnet" / "1" / "artifacts"
    assert params["manifest_sha256"] == sha256(copied / "manifest.json") == sha256(artifacts / "manifest.json")
    load_manifest(copied, verify=True)  # every file copied is the file the manifest hashed
    assert (repo / "escnet" / "1" / "model.py").read_text().startswith('"""The ``escnet`` Triton Python model')
    assert not (repo / "escnet" / "1" / "bls_backend.py").exists()


def test_vocabulary_and_rewrite_replaces_whole(artifacts, tmp_path):
    repo = tmp_path / "repo"
    assert export_triton("--artifacts", str(artifacts), "--out", str(repo), "--bls").returncode == 0
    proc = export_triton("--artifacts", str(artifacts), "--out", str(repo), "--classes", "wall, sky,tree")
    assert proc.returncode == 0, proc.stderr
    cfg = read_config(repo / "escnet" / "config.pbtxt")
    assert json.loads(parameters(cfg)["vocabulary"]) == ["wall", "sky", "tree"]
    assert sorted(p.name for p in repo.iterdir()) == ["escnet"]  # the BLS models are gone
    assert not list(tmp_path.glob(".repo.*"))  # no staging or backup left behind


def _fake_engines(artifacts: Path, folder: Path) -> dict:
    """An engine folder as `escnet-export trt` writes it (build.json format); the engines' bytes are
    placeholders: only the repository layout is checked here, no TensorRT runs."""
    manifest = load_manifest(artifacts)
    folder.mkdir()
    engine = folder / "image_encoder.engine"
    engine.write_bytes(b"not a real engine")
    spec = manifest.graphs["image_encoder"]
    size = manifest.preprocess.image_size
    record = {
        "graph": "image_encoder",
        "file": engine.name,
        "sha256": sha256(engine),
        "onnx_file": spec.file,
        "onnx_sha256": manifest.files[spec.file],
        "profile": [
            {"input": "image", "min": [1, 3, size, size], "opt": [2, 3, size, size], "max": [4, 3, size, size]}
        ],
    }
    build = {"format": "escnet-trt-build", "precision": "fp16", "engines": {"image_encoder": record}}
    (folder / "build.json").write_text(json.dumps(build))
    return record


def test_bls_repository_with_engines(artifacts, tmp_path):
    repo, engines = tmp_path / "repo", tmp_path / "trt"
    record = _fake_engines(artifacts, engines)
    proc = export_triton("--artifacts", str(artifacts), "--out", str(repo), "--bls", "--engines", str(engines))
    assert proc.returncode == 0, proc.stderr
    manifest = load_manifest(artifacts)
    pipeline = read_config(repo / "escnet" / "config.pbtxt")
    assert pipeline.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    table = json.loads(parameters(pipeline)["bls_models"])
    assert set(table) == set(manifest.graphs)
    assert (repo / "escnet" / "1" / "bls_backend.py").is_file()
    # the Python model keeps only the manifest and the tokenizer; the graphs live in their models
    assert sorted(p.name for p in (repo / "escnet" / "1" / "artifacts").iterdir()) == sorted(
        ["manifest.json", manifest.tokenizer.vocab_file]
    )
    for graph, spec in manifest.graphs.items():
        entry = table[graph]
        cfg = read_config(repo / entry["model"] / "config.pbtxt")
        assert cfg.name == entry["model"] == f"escnet_{graph}" and cfg.max_batch_size == 0
        assert sha256(repo / entry["model"] / "1" / entry["file"]) == entry["sha256"]
        assert [t.name for t in cfg.input] == spec.input_names and [t.name for t in cfg.output] == spec.output_names
        if graph == "image_encoder":
            assert cfg.platform == "tensorrt_plan" and entry["precision"] == "fp16"
            assert entry["sha256"] == record["sha256"] and list(cfg.instance_group[0].profile) == ["0"]
            size = manifest.preprocess.image_size
            assert list(cfg.input[0].dims) == [-1, 3, size, size]  # batch 1..4 in the profile: dynamic
        else:
            assert cfg.platform == "onnxruntime_onnx" and entry["sha256"] == manifest.files[spec.file]
            dims = [[d if isinstance(d, int) else -1 for d in t.shape] for t in spec.inputs]
            assert [list(t.dims) for t in cfg.input] == dims
            assert all(t.data_type in (mc.TYPE_FP32, mc.TYPE_INT64) for t in cfg.input)


def test_any_registered_backend_is_accepted(artifacts, tmp_path, monkeypatch):
    from escnet_export.triton.repository import TritonOptions, write_repository
    from escnet_runtime.backends import BACKENDS

    monkeypatch.setitem(BACKENDS, "ov-cpu", BACKENDS["ort-cpu"])  # as the OpenVINO branch registers it
    repo = write_repository(TritonOptions(artifacts, tmp_path / "repo", backend="ov-cpu"))
    assert parameters(read_config(repo / "escnet" / "config.pbtxt"))["backend"] == "ov-cpu"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "no-such"], "unknown backend 'no-such'"),
        (["--engines", "x"], "give --bls too"),
        (["--instances", "0"], "--instances is 0"),
        (["--classes", "sky,,tree"], "class name 2"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(artifacts, tmp_path, extra, message):
    proc = export_triton("--artifacts", str(artifacts), "--out", str(tmp_path / "repo"), *extra)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "repo").exists()


def test_tampered_artifacts_and_foreign_folders_are_refused(artifacts, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(artifacts, bad)
    with open(bad / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    proc = export_triton("--artifacts", str(bad), "--out", str(tmp_path / "repo"))
    assert proc.returncode == 2 and "does not match the manifest" in proc.stderr
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "keep.jpg").write_bytes(b"x")
    proc = export_triton("--artifacts", str(artifacts), "--out", str(foreign))
    assert proc.returncode == 2 and "not a repository written by escnet-export triton" in proc.stderr
    assert [p.name for p in foreign.iterdir()] == ["keep.jpg"]


def test_stale_engines_are_refused_and_the_old_repository_kept(artifacts, tmp_path):
    repo, engines = tmp_path / "repo", tmp_path / "trt"
    assert export_triton("--artifacts", str(artifacts), "--out", str(repo)).returncode == 0
    before = sha256(repo / "escnet" / "config.pbtxt")
    _fake_engines(artifacts, engines)
    (engines / "image_encoder.engine").write_bytes(b"changed after the build")
    proc = export_triton("--artifacts", str(artifacts), "--out", str(repo), "--bls", "--engines", str(engines))
    assert proc.returncode == 2 and "does not match build.json" in proc.stderr
    assert sha256(repo / "escnet" / "config.pbtxt") == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--clients", "0"], "Invalid value for '--clients'"),
        (["--size", "320"], "Invalid value for --size: '320': expected WIDTHxHEIGHT"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_triton_load_usage_errors_are_one_line(artifacts, extra, message):
    root = Path(__file__).parents[2]
    cmd = [sys.executable, "-m", "tests.support.triton_load", "--artifacts", str(artifacts), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert lines[0].startswith("triton_load: error: ")
