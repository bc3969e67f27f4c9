"""bf16 in the C++ runtime: the same f32 islands as the Python runtime's ov-cpu-bf16 (node for
node, per graph, by the same rule), and its labels. The Python bf16 inference runs in a child
process (docs/known-issues.md)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from cpp_tools import run_tool
from escnet_runtime import Segmenter
from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary
from PIL import Image
from support.artifacts import tiny_artifacts

ov = pytest.importorskip("openvino")
NAMES = ["sky", "grass", "a red car parked on the street", "wall", "person"]
ISLANDS = "escnet-segment-cpp: bf16: "

PYTHON_BF16 = """
import sys, numpy as np
from PIL import Image
from escnet_runtime import Segmenter
folder, names, image, out = sys.argv[1], sys.argv[2].split("|"), sys.argv[3], sys.argv[4]
with Segmenter(folder, backend="ov-cpu-bf16", disk_cache=False, model_cache=False) as seg:
    np.save(out, seg.set_vocabulary(names).segment(np.asarray(Image.open(image).convert("RGB"))).labels)
"""


@pytest.fixture(scope="module")
def run(tool, tmp_path_factory):
    """The C++ tool under bf16 on a 97x131 image: (its stderr, its labels, the artifacts, the image)."""
    artifacts, _ = tiny_artifacts(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("cpp-bf16")
    vocab = write_vocabulary(tmp / "v.escvocab", vocabulary_of(Segmenter(artifacts, disk_cache=False), NAMES))
    image = tmp / "image.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (97, 131, 3), dtype=np.uint8)).save(image)
    out = tmp / "labels.png"
    proc = run_tool(tool, "--artifacts", artifacts, "--vocabulary", vocab, "--precision", "bf16", "--out", out, image)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr, np.asarray(Image.open(out)).astype(np.int64), artifacts, image


def test_cpp_keeps_the_python_runtimes_f32_islands(run):
    from escnet_runtime.backends.ov_islands import mark_f32_islands

    stderr, _, artifacts, _ = run
    got = {}
    for line in stderr.splitlines():
        if line.startswith(ISLANDS):
            graph, _, rest = line[len(ISLANDS) :].partition(" keeps ")
            count, _, names = rest.partition(" nodes in f32:")
            got[graph] = names.split()
            assert len(got[graph]) == int(count)
    manifest = json.loads((artifacts / "manifest.json").read_text())
    core = ov.Core()
    want = {g: mark_f32_islands(core.read_model(str(artifacts / s["file"]))) for g, s in manifest["graphs"].items()}
    assert got == want
    assert sum(map(len, got.values())) > 0 and not got["image_encoder"] and not got["text_encoder"]


def test_cpp_bf16_labels_are_the_python_runtimes(run, tmp_path):
    _, labels, artifacts, image = run
    out = tmp_path / "python.npy"
    code = [sys.executable, "-c", PYTHON_BF16, str(artifacts), "|".join(NAMES), str(image), str(out)]
    proc = subprocess.run(code, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = np.load(out)
    assert labels.shape == want.shape == (97, 131)
    # Random weights leave classes nearly tied, and bf16 rounding moves those pixels in either runtime:
    # all-pixel agreement is loose; on the pixels f32 is sure of (top-2 margin > 0.05) they must agree.
    scores = Segmenter(artifacts, disk_cache=False).set_vocabulary(NAMES)
    top2 = np.sort(scores.segment(np.asarray(Image.open(image).convert("RGB")), return_scores=True).scores, axis=0)[-2:]
    confident = (top2[1] - top2[0]) > 0.05
    same = labels == want
    assert float(same.mean()) >= 0.8
    if confident.any():
        assert float(same[confident].mean()) >= 0.99, int(confident.sum())
