"""``escnet-export bake`` (one graph, the vocabulary inside) and the vocabulary file, on the tiny model."""

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.baked import load_baked_manifest
from escnet_runtime.contract import BAKED_FORMAT, CLASS_EMBEDDINGS, CLASS_SCORES, IMAGE, LABELS
from escnet_runtime.manifest import ManifestError
from escnet_runtime.vocab_file import read_vocabulary
from support.artifacts import BAKED_NAMES, tiny_baked


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    return tiny_baked(tmp_path_factory)


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_baked_graph_contract_and_parity(baked):
    folder, artifacts, _ = baked
    manifest = load_baked_manifest(folder)
    assert manifest.class_names == BAKED_NAMES and len(manifest.colours) == len(BAKED_NAMES)
    assert manifest.source["artifacts_manifest_sha256"]
    model = onnx.load(str(folder / "segmenter.onnx"))
    inputs = {v.name: v.type.tensor_type for v in model.graph.input}
    assert list(inputs) == [IMAGE] and inputs[IMAGE].elem_type == onnx.TensorProto.UINT8
    assert [o.name for o in model.graph.output] == [LABELS, CLASS_SCORES]

    sess = ort.InferenceSession(str(folder / "segmenter.onnx"), providers=["CPUExecutionProvider"])
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(list(BAKED_NAMES))
    rng = np.random.default_rng(5)
    for h, w in [(128, 128), (75, 210), (301, 97)]:  # square at S, wide, tall
        images = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        labels, scores = sess.run([LABELS, CLASS_SCORES], {IMAGE: images})
        assert labels.shape == (2, h, w) and labels.dtype == np.int32
        assert scores.shape == (2, len(BAKED_NAMES), 32, 32) and scores.dtype == np.float32
        for i in range(2):
            assert np.mean(labels[i] == seg.segment(images[i]).labels) >= 0.999
    assert min(manifest.extra["parity"]["labels_vs_python_segmenter"].values()) >= 0.999


def test_check_passes_on_a_baked_folder(baked):
    proc = _cli("check", str(baked[0]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "segmenter" in proc.stdout


def test_tampered_baked_folder_is_refused(baked, tmp_path):
    copy = tmp_path / "baked"
    shutil.copytree(baked[0], copy)
    with open(copy / "segmenter.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match="does not match"):
        load_baked_manifest(copy)
    proc = _cli("check", str(copy))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_bake_refuses_bad_classes_and_folders(baked, tmp_path):
    _, artifacts, _ = baked
    out = tmp_path / "never"
    proc = _cli("bake", "--artifacts", str(artifacts), "--classes", "a,,b", "--out", str(out))
    assert proc.returncode == 2 and "class name 2" in proc.stderr and not out.exists()
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _cli("bake", "--artifacts", str(tmp_path / "missing"), "--classes", "a", "--out", str(out))
    assert proc.returncode == 2 and not out.exists() and len(proc.stderr.strip().splitlines()) == 1
    tampered = tmp_path / "tampered"
    shutil.copytree(artifacts, tampered)
    with open(tampered / "decoder_open.onnx", "ab") as f:
        f.write(b"\0")
    proc = _cli("bake", "--artifacts", str(tampered), "--classes", "a,b", "--out", str(out))
    assert proc.returncode == 2 and "does not match" in proc.stderr and not out.exists()


def test_vocabulary_file_is_safetensors_with_the_encoder_identity(baked, tmp_path):
    from safetensors.numpy import load_file, safe_open

    _, artifacts, _ = baked
    path = tmp_path / "v.escvocab"
    proc = _cli("vocab", "--artifacts", str(artifacts), "--classes", "sky,grass", "--out", str(path))
    assert proc.returncode == 0, proc.stderr
    seg = Segmenter(artifacts, disk_cache=False)
    want = seg.encode_vocabulary(["sky", "grass"])
    tensors = load_file(str(path))  # the upstream reader
    assert list(tensors) == [CLASS_EMBEDDINGS] and np.array_equal(tensors[CLASS_EMBEDDINGS], want)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert json.loads(meta["class_names"]) == ["sky", "grass"]
    assert meta["text_encoder_sha256"] == seg.manifest.files["text_encoder.onnx"]
    vocab = read_vocabulary(path)
    assert vocab.class_names == ("sky", "grass") and np.array_equal(vocab.embeddings, want)


def test_segment_precompute_writes_a_vocabulary_file(baked, tmp_path):
    _, artifacts, _ = baked
    path = tmp_path / "w.escvocab"
    cmd = [sys.executable, "-c", "from escnet_runtime.cli import app; app()", "--artifacts", str(artifacts)]
    cmd += ["--classes", "tree,road", "--precompute", "--no-disk-cache", "--vocab-out", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert read_vocabulary(path).class_names == ("tree", "road")


def test_baked_manifest_format(baked):
    data = json.loads((baked[0] / "manifest.json").read_text())
    assert data["format"] == BAKED_FORMAT and data["files"].keys() == {"segmenter.onnx"}
    assert [c["name"] for c in data["classes"]] == list(BAKED_NAMES)
