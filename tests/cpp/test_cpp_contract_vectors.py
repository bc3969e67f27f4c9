"""The contract test vectors (tests/support/contract_vectors) through the C++ runtime: every
damaged manifest, baked manifest and vocabulary file is refused in one line naming the field,
with a non-zero exit and no output written, as the Python runtime refuses them."""

from pathlib import Path

import pytest
from cpp_tools import one_line_error, run_tool
from escnet_runtime import Segmenter
from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary
from PIL import Image
from support.artifacts import tiny_baked
from support.contract_vectors.apply import VOCAB_CLASSES, apply_vector, load_vectors

VECTORS = load_vectors()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The undamaged sources each vector kind patches, a vocabulary for artifacts folders, an image."""
    baked, artifacts, _ = tiny_baked(tmp_path_factory)
    base = tmp_path_factory.mktemp("vectors")
    seg = Segmenter(artifacts, disk_cache=False)
    vocab = write_vocabulary(base / "base.escvocab", vocabulary_of(seg, list(VOCAB_CLASSES)))
    image = base / "image.png"
    Image.new("RGB", (40, 30), (90, 140, 200)).save(image)
    return {"manifest": artifacts, "baked_manifest": baked, "vocabulary": vocab, "image": image}


def test_every_vector_kind_is_covered():
    assert {v["kind"] for v in VECTORS} == {"manifest", "baked_manifest", "vocabulary"}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_cpp_refuses_the_vector_naming_its_field(tool, inputs, tmp_path, vector):
    damaged = apply_vector(vector, inputs[vector["kind"]], tmp_path / "work")
    out = tmp_path / "labels.png"
    if vector["kind"] == "vocabulary":
        args = ["--artifacts", inputs["manifest"], "--vocabulary", damaged]
    elif vector["kind"] == "manifest":
        args = ["--artifacts", damaged, "--vocabulary", inputs["vocabulary"]]
    else:
        args = ["--artifacts", damaged]
    line = one_line_error(run_tool(tool, *args, "--out", out, inputs["image"]))
    assert vector["error"] in line, f"{vector['name']}: {line}"
    assert not out.exists()
