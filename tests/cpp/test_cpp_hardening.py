"""The C++ runtime against hostile and broken inputs: every byte the engine reads is inside the
folder, listed and hashed; lengths are checked before they are used; a baked graph's outputs are
checked against its manifest; huge PNG headers are refused before any pixel buffer exists;
outputs never replace a file without --overwrite. Each refusal is one line and exit 2."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cpp_tools import one_line_error, run_tool
from escnet_runtime import Segmenter
from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary
from graph_edits import png_header, rehash, stand_in_baked, vocabulary_with, with_external_data
from PIL import Image
from support.artifacts import tiny_baked


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    baked, artifacts, _ = tiny_baked(tmp_path_factory)
    base = tmp_path_factory.mktemp("hardening")
    seg = Segmenter(artifacts, disk_cache=False)
    vocab = write_vocabulary(base / "good.escvocab", vocabulary_of(seg, ["sky", "grass"]))
    image = base / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(image)
    return {"artifacts": artifacts, "baked": baked, "vocabulary": vocab, "image": image}


def _refused(tool: Path, folders: dict, folder: Path, needle: str, *extra, vocabulary=True, cwd=None) -> str:
    out = Path(folders["image"]).parent / "never.png"
    vocab = ["--vocabulary", folders["vocabulary"]] if vocabulary else []
    line = one_line_error(
        run_tool(tool, "--artifacts", folder, *vocab, "--out", out, *extra, folders["image"], cwd=cwd)
    )
    assert needle in line, line
    assert not out.exists()
    return line


def test_external_data_at_an_absolute_path_is_refused(tool, folders, tmp_path):
    outside = tmp_path / "elsewhere" / "weights.bin"
    copy = with_external_data(folders["artifacts"], tmp_path / "a", "decoder_close", str(outside), outside)
    line = _refused(tool, folders, copy, "not a relative path inside the artifacts folder")
    assert "decoder_close.onnx" in line


def test_external_data_beside_the_process_is_refused(tool, folders, tmp_path):
    cwd = tmp_path / "cwd"
    copy = with_external_data(folders["artifacts"], tmp_path / "a", "decoder_close", "weights.bin", cwd / "weights.bin")
    _refused(tool, folders, copy, "keeps weights in external data ('weights.bin')", cwd=cwd)


def test_listed_and_hashed_external_data_is_still_not_read_unverified(tool, folders, tmp_path):
    copy = with_external_data(folders["artifacts"], tmp_path / "a", "decoder_close", "w.bin", tmp_path / "a" / "w.bin")
    rehash(copy, "w.bin")
    _refused(tool, folders, copy, "the C++ runtime does not load")
    (copy / "decoder_close.onnx").write_bytes(b"\x0a\xff\xff")  # a length past the end: not a protobuf
    rehash(copy, "decoder_close.onnx")
    _refused(tool, folders, copy, "not a readable ONNX model")


def test_vocabulary_offsets_that_wrap_are_refused(tool, folders, tmp_path):
    count = 2 * 4 * int(np.prod(json_shape(folders["vocabulary"])[1:]))  # bytes of the two classes
    begin = 2**64 - 25600  # begin + bytes wraps past 2^64 to a small end
    wrapped = vocabulary_with(
        folders["vocabulary"], tmp_path / "w.escvocab", data_offsets=[begin, (begin + count) % 2**64]
    )
    line = one_line_error(
        run_tool(
            tool,
            "--artifacts",
            folders["artifacts"],
            "--vocabulary",
            wrapped,
            "--out",
            tmp_path / "o.png",
            folders["image"],
        )
    )
    assert "data_offsets" in line
    huge = vocabulary_with(folders["vocabulary"], tmp_path / "h.escvocab", shape=[2**62, 2**62, 4])
    line = one_line_error(
        run_tool(
            tool,
            "--artifacts",
            folders["artifacts"],
            "--vocabulary",
            huge,
            "--out",
            tmp_path / "o.png",
            folders["image"],
        )
    )
    assert "class_embeddings.shape[0]" in line


def json_shape(vocab: Path) -> list[int]:
    import struct

    raw = vocab.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])["class_embeddings"]["shape"]


@pytest.mark.parametrize(
    ("labels", "needle"), [("small", "for a 30x40 image"), ("range", "the manifest lists 5 classes")]
)
def test_baked_graph_outputs_are_checked_against_the_manifest(tool, folders, tmp_path, labels, needle):
    copy = stand_in_baked(folders["baked"], tmp_path / "b", labels)
    line = _refused(tool, folders, copy, needle, vocabulary=False)
    assert "graphs.segmenter.outputs (labels)" in line


def test_a_manifest_that_disagrees_with_its_graph_names_the_field(tool, folders, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(folders["artifacts"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    dense = manifest["graphs"]["decoder_open"]["inputs"][0]
    dense["shape"] = [*dense["shape"][:-1], dense["shape"][-1] + 1]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    line = _refused(tool, folders, copy, "the manifest and its graph disagree")
    assert "graphs.decoder_open.inputs[0] (dense_features)" in line


@pytest.mark.parametrize(("width", "height"), [(100000, 100000), (20000, 20000), (40000, 10)])
def test_huge_png_headers_are_refused_before_allocating(tool, folders, tmp_path, width, height):
    png = png_header(tmp_path / "huge.png", width, height)
    proc = run_tool(
        tool,
        "--artifacts",
        folders["artifacts"],
        "--vocabulary",
        folders["vocabulary"],
        "--out",
        tmp_path / "o.png",
        png,
    )
    assert "over the limit" in one_line_error(proc)


def test_truncated_and_foreign_images_are_one_line(tool, folders, tmp_path):
    data = Path(folders["image"]).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    for image, needle in ((cut, "damaged PNG"), (folders["vocabulary"], "not a PNG")):
        proc = run_tool(
            tool,
            "--artifacts",
            folders["artifacts"],
            "--vocabulary",
            folders["vocabulary"],
            "--out",
            tmp_path / "o.png",
            image,
        )
        assert needle in one_line_error(proc)


def test_outputs_never_replace_a_file_without_overwrite(tool, folders, tmp_path):
    base = ["--artifacts", folders["baked"]]
    out = tmp_path / "labels.png"
    out.write_bytes(b"the user's own file")
    assert "pass --overwrite" in one_line_error(run_tool(tool, *base, "--out", out, folders["image"]))
    assert out.read_bytes() == b"the user's own file"
    proc = run_tool(tool, *base, "--out", out, "--overwrite", folders["image"])
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (40, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.png"]  # no temporary file left
    inside = Path(folders["baked"]) / "labels.png"
    assert "inside the artifacts folder" in one_line_error(run_tool(tool, *base, "--out", inside, folders["image"]))
    assert not inside.exists()
    assert "no such folder" in one_line_error(
        run_tool(tool, *base, "--out", tmp_path / "no" / "l.png", folders["image"])
    )
    assert "not a regular file" in one_line_error(
        run_tool(tool, *base, "--out", tmp_path, "--overwrite", folders["image"])
    )


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--class-chunk", "0"),
        ("--class-chunk", "99999999999"),
        ("--threads", "-1"),
        ("--concurrent", "100000"),
        ("--repeat", "x"),
        ("--precision", "f16"),
    ],  # fmt: skip
)
def test_bad_options_are_refused_before_any_work(tool, folders, tmp_path, flag, value):
    proc = run_tool(tool, "--artifacts", folders["baked"], "--out", tmp_path / "o.png", flag, value, folders["image"])
    line = one_line_error(proc)
    assert flag.lstrip("-") in line and value in line, line
    assert not (tmp_path / "o.png").exists()


def test_a_vocabulary_that_is_not_a_regular_file_is_refused(tool, folders, tmp_path):
    fifo = tmp_path / "fifo.escvocab"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        _refused(tool, folders, folders["artifacts"], "not a regular file", "--vocabulary", path, vocabulary=False)
