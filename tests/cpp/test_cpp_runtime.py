"""The C++ runtime (runtime/cpp), built once per session (tests/cpp/conftest.py), run on the tiny
artifacts against the Python runtime.
"""

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cpp_tools import one_line_error, run_tool
from escnet_runtime import Segmenter
from escnet_runtime.vocab_file import read_vocabulary, vocabulary_of, write_vocabulary
from PIL import Image
from support.artifacts import BAKED_NAMES, tiny_baked

SIZES = [(90, 140), (128, 128), (201, 77)]  # wide, square at S, tall
VOCABULARIES = {
    "five": (["sky", "grass", "a red car parked on the street", "wall", "person"], None),  # one chunk
    "fourteen": ([f"thing {i}" for i in range(11)] + ["tree", "road", "floor"], 4),  # four chunks, uneven
}


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    return tiny_baked(tmp_path_factory)


def _image(tmp: Path, h: int, w: int, seed: int) -> tuple[Path, np.ndarray]:
    array = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path = tmp / f"img_{h}x{w}_{seed}.png"
    Image.fromarray(array).save(path)
    return path, array


def _labels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int64)


@pytest.mark.parametrize("vocab", sorted(VOCABULARIES))
def test_cpp_labels_match_the_python_runtime(tool, baked, tmp_path, vocab):
    _, artifacts, _ = baked
    names, chunk = VOCABULARIES[vocab]
    seg = Segmenter(artifacts, disk_cache=False, class_chunk=chunk).set_vocabulary(names)
    vocab_file = write_vocabulary(tmp_path / "v.escvocab", vocabulary_of(seg, names))
    extra = ["--class-chunk", str(chunk)] if chunk else []
    for i, (h, w) in enumerate(SIZES):
        image, array = _image(tmp_path, h, w, seed=i)
        out = tmp_path / f"labels_{i}.png"
        threads = ["--concurrent", "3"] if i == 0 else []  # also 3 threads on one Segmenter, same labels
        proc = run_tool(
            tool, "--artifacts", artifacts, "--vocabulary", vocab_file, "--out", out, *extra, *threads, image
        )
        assert proc.returncode == 0, proc.stderr
        got, want = _labels(out), seg.segment(array).labels
        assert got.shape == (h, w)
        agreement = float(np.mean(got == want))
        assert agreement >= 0.999, f"{vocab} {h}x{w}: {agreement:.4%} of pixels equal"


def test_cpp_tool_takes_class_names(tool, baked, tmp_path):
    """--classes: the names encoded by the artifacts' text encoder, in C++, as the Python runtime does."""
    _, artifacts, _ = baked
    names = ["sky", "grass", "a red car parked on the street", "wall", "person"]
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(names)
    image, array = _image(tmp_path, 61, 83, seed=4)
    out = tmp_path / "named.png"
    proc = run_tool(tool, "--artifacts", artifacts, "--classes", " , ".join(names), "--out", out, image)
    assert proc.returncode == 0, proc.stderr
    assert "5 classes, 83x61, fp32 artifacts, f32" in proc.stderr
    assert np.mean(_labels(out) == seg.segment(array).labels) >= 0.999
    vocab = write_vocabulary(tmp_path / "v.escvocab", vocabulary_of(seg, names))
    for extra, message in [
        (["--classes", "sky,,grass"], "--classes sky,,grass: an empty class name"),
        (["--classes", "sky", "--vocabulary", str(vocab)], "give --vocabulary FILE or --classes NAMES, not both"),
        ([], "--vocabulary FILE or --classes NAMES is needed"),
    ]:
        again = tmp_path / "refused.png"
        assert message in one_line_error(run_tool(tool, "--artifacts", artifacts, *extra, "--out", again, image))
        assert not again.exists()


def test_cpp_runs_a_baked_graph(tool, baked, tmp_path):
    folder, artifacts, _ = baked
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(list(BAKED_NAMES))
    for i, (h, w) in enumerate(SIZES):
        image, array = _image(tmp_path, h, w, seed=10 + i)
        out = tmp_path / f"baked_{i}.png"
        proc = run_tool(tool, "--artifacts", folder, "--out", out, image)
        assert proc.returncode == 0, proc.stderr
        assert np.mean(_labels(out) == seg.segment(array).labels) >= 0.999
    proc = run_tool(tool, "--artifacts", folder, "--vocabulary", tmp_path / "x", "--out", tmp_path / "o.png", image)
    assert "baked" in one_line_error(proc)


def test_cpp_refuses_bad_inputs_in_one_line(tool, baked, tmp_path):
    _, artifacts, _ = baked
    image, _ = _image(tmp_path, 40, 50, seed=0)
    out = tmp_path / "never.png"
    seg = Segmenter(artifacts, disk_cache=False)
    vocab = vocabulary_of(seg, ["sky", "grass"])
    good = write_vocabulary(tmp_path / "good.escvocab", vocab)

    def refused(folder: Path, vocab_file: Path, needle: str) -> None:
        line = one_line_error(run_tool(tool, "--artifacts", folder, "--vocabulary", vocab_file, "--out", out, image))
        assert needle in line, line
        assert not out.exists()

    refused(tmp_path / "missing", good, "no such folder")

    tampered = tmp_path / "tampered"
    shutil.copytree(artifacts, tampered)
    with open(tampered / "decoder_open.onnx", "ab") as f:
        f.write(b"\0")
    refused(tampered, good, "decoder_open.onnx does not match the manifest")

    newer = tmp_path / "newer"
    shutil.copytree(artifacts, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] += 1
    (newer / "manifest.json").write_text(json.dumps(manifest))
    refused(newer, good, "newer than this runtime supports")

    identity = dataclasses.replace(vocab.identity, text_encoder_sha256="0" * 64)
    stale = write_vocabulary(tmp_path / "stale.escvocab", dataclasses.replace(vocab, identity=identity))
    refused(artifacts, stale, "another text encoder")
    refused(artifacts, image, "not an escnet vocabulary file")
    refused(artifacts, tmp_path / "absent.escvocab", "no such vocabulary file")

    damaged = tmp_path / "damaged.escvocab"
    data = bytearray(good.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    refused(artifacts, damaged, "embeddings_sha256")
    assert read_vocabulary(good).class_names == ("sky", "grass")

    no_image = tmp_path / "no.png"
    line = one_line_error(run_tool(tool, "--artifacts", artifacts, "--vocabulary", good, "--out", out, no_image))
    assert "no such file" in line


def test_cpp_tool_has_an_rpath_to_the_openvino_wheel(tool):
    proc = subprocess.run(["readelf", "-d", str(tool)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("readelf is not on this machine")
    import openvino

    assert str(Path(openvino.__file__).parent / "libs") in proc.stdout
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    help_run = subprocess.run([str(tool), "--help"], capture_output=True, text=True, env=env)
    assert help_run.returncode == 0 and "usage" in help_run.stdout
