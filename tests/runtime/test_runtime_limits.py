"""Limits checked before the work: ``Segmenter.segment``'s pixel limit, and a tokenizer vocabulary
that inflates far beyond CLIP's (decompression stops at the limit, memory stays bounded)."""

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.errors import InputError
from escnet_runtime.image_io import DEFAULT_MAX_PIXELS
from escnet_runtime.tokenizer import MAX_VOCAB_BYTES
from PIL import Image
from support.artifacts import tiny_artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def seg(artifacts):
    return Segmenter(artifacts, disk_cache=False, max_pixels=64 * 64).set_vocabulary(["cat", "sky"])


def test_images_over_the_pixel_limit_are_refused_before_any_work(seg, tmp_path):
    assert seg.segment(np.zeros((64, 64, 3), np.uint8)).labels.shape == (64, 64)
    for image in (np.zeros((65, 64, 3), np.uint8), Image.new("RGB", (80, 80))):
        with pytest.raises(InputError, match="over the limit of 4096 pixels"):
            seg.segment(image)
    Image.new("RGB", (100, 90)).save(tmp_path / "big.png")
    with pytest.raises(InputError, match="100x90"):
        seg.segment([np.zeros((8, 8, 3), np.uint8), tmp_path / "big.png"])  # the whole list, before the first


def test_the_default_limit_refuses_a_huge_array_without_touching_it(artifacts):
    """A 40000 x 40000 view of one pixel (no memory behind it): refused, allocating next to nothing."""
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(["cat"])
    assert seg.max_pixels == DEFAULT_MAX_PIXELS
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (40_000, 40_000, 3))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="40000x40000"):
            seg.segment(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def _gzip_of_zeros(path: Path, size: int) -> None:
    """A gzip file inflating to ``size`` bytes (the CLIP header line, then zeros), written in pieces."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(deflate.compress(b'"bpe_simple_vocab_16e6.txt#version: 0.2\n'))
        for _ in range(size // len(block)):
            f.write(deflate.compress(block))
        f.write(deflate.flush())


def _with_bomb(artifacts: Path, tmp_path: Path, inflated: int) -> Path:
    """A copy of the artifacts whose tokenizer vocabulary is a gzip bomb, its sha256 recomputed."""
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    vocab = manifest["tokenizer"]["vocab_file"]
    _gzip_of_zeros(copy / vocab, inflated)
    digest = hashlib.sha256((copy / vocab).read_bytes()).hexdigest()
    manifest["files"][vocab] = manifest["tokenizer"]["vocab_sha256"] = digest
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_a_vocabulary_that_inflates_to_a_gigabyte_is_refused_in_bounded_memory(artifacts, tmp_path):
    inflated = 1 << 30
    copy = _with_bomb(artifacts, tmp_path, inflated)
    assert (copy / "bpe_simple_vocab_16e6.txt.gz").stat().st_size < 4 << 20
    code = textwrap.dedent(
        f"""
        from escnet_runtime import Segmenter
        from escnet_runtime.errors import InputError
        try:
            Segmenter({str(copy)!r}, disk_cache=False)
        except InputError as e:
            print(e)
        # VmHWM: this program's own peak (ru_maxrss would include the forking parent's)
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        print(int(status.split()[0]) * 1024)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    message, peak = proc.stdout.strip().splitlines()
    assert "inflates to more than" in message and f"{MAX_VOCAB_BYTES >> 20} MiB" in message
    assert int(peak) < inflated // 2, f"peak RSS {int(peak) >> 20} MiB while refusing"
