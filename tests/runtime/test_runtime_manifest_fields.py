"""Issue 12, items 1, 2, 5 and the 1.1 manifest fields: every path a manifest names stays inside
its folder and is hashed; every field is validated with a one-line error naming it."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import ManifestError, Segmenter, load_manifest
from escnet_runtime.cli import app
from escnet_runtime.contract import DTYPES, FORMAT_MINOR, WEIGHTS_PRECISIONS
from escnet_runtime.manifest import read_verified
from escnet_runtime.manifest_checks import load_schema
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "art"
    shutil.copytree(folder, target)
    return target


def _edit(folder: Path, change) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(message: str) -> str:
    assert "\n" not in message and "Traceback" not in message, message
    return message


def _refused(folder: Path, *fragments: str, verify: bool = True) -> str:
    with pytest.raises(ManifestError) as info:
        load_manifest(folder, verify=verify)
    message = _one_line(str(info.value))
    for fragment in fragments:
        assert fragment in message, message
    return message


def _cli_refuses(folder: Path, tmp_path: Path, fragment: str) -> None:
    image = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
    out = tmp_path / "out"
    args = [str(image), "--artifacts", str(folder), "--classes", "cat,sky", "--out", str(out), "--no-disk-cache"]
    result = CliRunner().invoke(app, args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("escnet-segment: error:") and fragment in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not yours\n")
    return secret


# -- item 1: paths that leave the folder --------------------------------------------------------


@pytest.mark.parametrize("how", ["dotdot", "absolute", "inner-dotdot", "backslash", "dot"])
def test_files_entries_outside_the_folder_are_refused(artifacts, tmp_path, outside, how):
    folder = _copy(artifacts, tmp_path)
    name = {
        "dotdot": "../outside/secret.txt",
        "absolute": str(outside),
        "inner-dotdot": "trt/../../outside/secret.txt",
        "backslash": "..\\outside\\secret.txt",
        "dot": "./decoder.onnx",
    }[how]
    real = _sha(outside)
    _edit(folder, lambda d: d["files"].__setitem__(name, real))  # the correct hash of the outside file
    message = _refused(folder, "files", "not a relative path inside the artifacts folder")
    assert real[:8] not in message


def test_wrong_hash_of_an_outside_file_prints_nothing_about_it(artifacts, tmp_path, outside):
    folder = _copy(artifacts, tmp_path)
    _edit(folder, lambda d: d["files"].__setitem__("../outside/secret.txt", "0" * 64))
    message = _refused(folder, "files")
    assert _sha(outside)[:6] not in message and "does not match" not in message and "missing" not in message


@pytest.mark.parametrize("target_exists", [True, False])
def test_symlinks_leading_outside_are_refused(artifacts, tmp_path, outside, target_exists):
    folder = _copy(artifacts, tmp_path)
    link = folder / "extra.txt"
    os.symlink(outside if target_exists else tmp_path / "nowhere.txt", link)
    _edit(folder, lambda d: d["files"].__setitem__("extra.txt", _sha(outside)))
    message = _refused(folder, "extra.txt", "outside the artifacts folder")
    assert _sha(outside)[:6] not in message and "missing" not in message
    _refused(folder, "outside the artifacts folder", verify=False)  # confinement holds without hashing too
    _cli_refuses(folder, tmp_path, "outside the artifacts folder")


def test_a_graph_replaced_by_a_symlink_outside_is_refused_at_load(artifacts, tmp_path, outside):
    folder = _copy(artifacts, tmp_path)
    shutil.copy(folder / "decoder.onnx", outside.parent / "decoder.onnx")
    (folder / "decoder.onnx").unlink()
    os.symlink(outside.parent / "decoder.onnx", folder / "decoder.onnx")  # same bytes, outside
    _refused(folder, "decoder.onnx", "outside the artifacts folder")


def test_symlinks_inside_the_folder_are_followed(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    (folder / "weights").mkdir()
    (folder / "text_encoder.onnx").rename(folder / "weights" / "text_encoder.onnx")
    os.symlink("weights/text_encoder.onnx", folder / "text_encoder.onnx")
    manifest = load_manifest(folder)
    assert read_verified(folder, manifest, "text_encoder.onnx")[:4] == (folder / "text_encoder.onnx").read_bytes()[:4]


def test_a_listed_folder_is_not_a_regular_file(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    (folder / "sub").mkdir()
    _edit(folder, lambda d: d["files"].__setitem__("sub", "0" * 64))
    _refused(folder, "sub", "not a regular file")


@pytest.mark.parametrize(
    "field,value,fragment",
    [
        ("graph", "../../outside/x", "graphs"),
        ("graph", "sub/x", "graphs"),
        ("step", "../../outside/x", "decoder_steps[0]"),
        ("vocab", "../outside/secret.txt", "tokenizer.vocab_file"),
        ("vocab", "/etc/hostname", "tokenizer.vocab_file"),
    ],
)
def test_graph_step_and_vocabulary_names_cannot_leave_the_folder(artifacts, tmp_path, outside, field, value, fragment):
    folder = _copy(artifacts, tmp_path)

    def change(d):
        if field == "graph":
            d["graphs"][value] = d["graphs"]["decoder"]
        elif field == "step":
            d["decoder_steps"][0] = value
        else:
            d["tokenizer"]["vocab_file"] = value

    _edit(folder, change)
    message = _refused(folder, fragment)
    assert _sha(outside)[:6] not in message


# -- item 2: every file of the contract is listed and hashed -----------------------------------


@pytest.mark.parametrize("name", ["decoder.onnx", "decoder_close.onnx", "text_encoder.onnx"])
def test_a_graph_missing_from_files_is_refused(artifacts, tmp_path, name):
    folder = _copy(artifacts, tmp_path)
    _edit(folder, lambda d: d["files"].pop(name))
    _refused(folder, "files", name, "not listed")
    _cli_refuses(folder, tmp_path, "not listed")


def test_the_vocabulary_missing_from_files_is_refused(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    _edit(folder, lambda d: d["files"].pop(d["tokenizer"]["vocab_file"]))
    _refused(folder, "tokenizer vocabulary", "not listed")


def test_vocabulary_hash_must_agree_with_files(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    _edit(folder, lambda d: d["tokenizer"].__setitem__("vocab_sha256", "f" * 64))
    _refused(folder, "tokenizer.vocab_sha256")


def test_read_verified_reads_only_listed_matching_files(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    manifest = load_manifest(folder)
    data = read_verified(folder, manifest, "decoder.onnx")
    assert hashlib.sha256(data).hexdigest() == manifest.files["decoder.onnx"]
    (folder / "notes.txt").write_text("unlisted")
    for name in ("notes.txt", "../art/decoder.onnx", "manifest.json"):
        with pytest.raises(ManifestError, match="not listed"):
            read_verified(folder, manifest, name)
    with open(folder / "decoder.onnx", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(ManifestError, match="does not match"):
        read_verified(folder, manifest, "decoder.onnx")


# -- item 5: schema and values ---------------------------------------------------------------


def _set(path: str, value):
    def change(d):
        *parents, last = path.split(".")
        node = d
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    "change,expected",
    [
        (_set("templates", ["a photo of a cat."]), "templates[0]: expected exactly one {}"),
        (_set("templates", ["{} and {}"]), "templates[0]: expected exactly one {}"),
        (_set("templates", ["a {0} photo {}"]), "templates[0]"),
        (_set("templates", ["a {name} {}"]), "templates[0]"),
        (_set("templates", []), "templates: expected a non-empty list of templates, got an empty list"),
        (_set("templates", "a photo of a {}."), "templates: expected a non-empty list"),
        (_set("preprocess.image_size", 0), "preprocess.image_size: expected a positive whole number, got 0"),
        (_set("preprocess.image_size", "128"), "preprocess.image_size: expected a positive whole number"),
        (_set("preprocess.mean", [0.5, 0.5]), "preprocess.mean: expected 3 numbers, got 2"),
        (_set("preprocess.mean", [0.5, 0.5, 0.5, 0.5]), "preprocess.mean: expected 3 numbers, got 4"),
        (_set("preprocess.std", [0.2, 0.0, 0.2]), "preprocess.std[1]: expected a number > 0, got 0"),
        (_set("preprocess.std", [0.2, -1, 0.2]), "preprocess.std[1]"),
        (_set("preprocess.mean", _DELETE), "preprocess.mean: missing"),
        (_set("preprocess.resize", "bicubic"), "preprocess.resize: this runtime implements 'bilinear"),
        (_set("preprocess.layout", "NHWC BGR"), "preprocess.layout: this runtime implements 'NCHW RGB'"),
        (_set("preprocess.scale", 1e-30), "preprocess.scale: expected 1 / (the image's maximum value)"),
        (_set("tokenizer.eot_token", "</s>"), "tokenizer.eot_token: this runtime implements '<end_of_text>'"),
        (_set("tokenizer.kind", "sentencepiece"), 'tokenizer.kind: expected "openai-clip-bpe"'),
        (_set("graphs.decoder.inputs.0.dtype", "float64"), "graphs.decoder.inputs[0].dtype: expected one of float32"),
        (_set("graphs.text_encoder.inputs.0.shape", [0, 77]), "graphs.text_encoder.inputs[0].shape[0]"),
        (_set("graphs.decoder.file", "image_encoder.onnx"), "graphs.decoder.file: expected 'decoder.onnx'"),
        (_set("files", {}), "files: expected an object of file path -> sha256 (at least one), got an empty object"),
        (_set("tokenizer.context_length", 1), "tokenizer.context_length: expected a whole number >= 2"),
        (_set("tokenizer.vocab_sha256", "XYZ"), "tokenizer.vocab_sha256: expected a sha256"),
        (_set("class_chunk", 0), "class_chunk"),
        (_set("class_chunk", 2.5), "class_chunk"),
        (_set("decoder_steps", ["decoder_open", "nowhere"]), "decoder_steps[1]: 'nowhere' is not among the graphs"),
        (_set("preset", ""), "preset: expected a non-empty string"),
        (_set("opset", "18"), "opset: expected a positive whole number"),
        (_set("format_version", "1"), "format_version: expected a whole number >= 1"),
        (_set("sliding_window", _DELETE), "sliding_window: missing"),
        (_set("text_batch", 0), "text_batch: expected a positive whole number, got 0"),
        (_set("sliding_window.stride", 100), "sliding_window: windows of 128 at stride 100 do not tile"),
        (_set("sliding_window.window", 96), "sliding_window.window: expected the image size 128"),
        (_set("preprocess.image_size", 96), "preprocess.image_size: 96 differs from the image encoder's input"),
    ],
)
def test_bad_fields_give_one_line_naming_the_field(artifacts, tmp_path, change, expected):
    folder = _copy(artifacts, tmp_path)
    _edit(folder, change)
    _refused(folder, expected, verify=False)


def test_files_key_with_a_dotted_name_is_handled(artifacts, tmp_path):
    """(the _set helper splits on dots; edit a files key directly)"""
    folder = _copy(artifacts, tmp_path)
    _edit(folder, lambda d: d["files"].__setitem__("decoder.onnx", "abc"))
    _refused(folder, "files.decoder.onnx: expected a sha256")


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(artifacts, tmp_path, word):
    folder = _copy(artifacts, tmp_path)
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["preprocess"]["std"][0] = "@@"
    path.write_text(json.dumps(data).replace('"@@"', word))
    _refused(folder, f"non-finite number {word}")


@pytest.mark.parametrize("text", ["[]", "null", '"escnet"', "{", "\ufeff{}", '{"format": "escnet-artifacts"}'])
def test_manifests_that_are_not_objects_or_incomplete(artifacts, tmp_path, text):
    folder = _copy(artifacts, tmp_path)
    (folder / "manifest.json").write_text(text, encoding="utf-8")
    _refused(folder, "manifest.json")


def test_bad_template_exits_2_through_the_cli(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    _edit(folder, _set("templates", ["a photo"]))
    _cli_refuses(folder, tmp_path, "templates[0]: expected exactly one {}")


def test_schema_dtypes_are_the_contracts():
    assert load_schema()["$defs"]["tensor"]["properties"]["dtype"]["enum"] == list(DTYPES)
    assert load_schema()["properties"]["precision"]["enum"] == list(WEIGHTS_PRECISIONS)


# -- format 1.1: sliding window and text batch from the manifest ---------------------------


def test_exporter_writes_the_references_constants(artifacts):
    from escnet.inference import sliding_geometry
    from escnet.modeling.model import TEXT_BATCH

    m = load_manifest(artifacts, verify=False)
    canvas, stride = sliding_geometry(m.preprocess.image_size)
    assert m.format_minor == FORMAT_MINOR == 2 and m.precision == "fp32"
    assert (m.sliding_window.canvas, m.sliding_window.window, m.sliding_window.stride) == (canvas, 128, stride)
    assert m.text_batch == TEXT_BATCH


def test_a_format_1_0_manifest_loads_with_the_old_constants(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    new = load_manifest(folder)

    def to_1_0(d):
        for key in ("format_minor", "sliding_window", "text_batch"):
            d.pop(key)

    _edit(folder, to_1_0)
    old = load_manifest(folder)
    assert old.format_minor == 0 and old.sliding_window is None and old.text_batch is None
    assert old.sliding() == new.sliding() and old.texts_per_call() == new.texts_per_call()


def test_a_format_1_1_manifest_holds_fp32_graphs(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)

    def to_1_1(d):
        d["format_minor"] = 1
        d.pop("precision")

    _edit(folder, to_1_1)
    old = load_manifest(folder)
    assert (old.format_minor, old.precision, old.weights_precision()) == (1, None, "fp32")


def test_a_later_minor_with_unknown_fields_loads(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)

    def later(d):
        d["format_minor"] = 7
        d["something_new"] = {"x": 1}
        d["tokenizer"]["new_option"] = True

    _edit(folder, later)
    assert load_manifest(folder).text_batch == 256


def test_the_runtime_uses_the_manifests_sliding_window(artifacts, tmp_path):
    """One window covering the whole canvas (canvas = window = S): sliding equals single view."""
    folder = _copy(artifacts, tmp_path)
    image = np.random.default_rng(3).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    seg = Segmenter(folder, disk_cache=False).set_vocabulary(["cat", "grass", "sky"])
    single = seg.segment(image).labels
    assert (seg.segment(image, sliding_window=True).labels != single).any()  # the exported geometry differs
    _edit(folder, _set("sliding_window", {"canvas": 128, "window": 128, "stride": 128}))
    seg = Segmenter(folder, disk_cache=False).set_vocabulary(["cat", "grass", "sky"])
    assert (seg.segment(image, sliding_window=True).labels == single).all()


def test_the_runtime_uses_the_manifests_text_batch(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    names = ["cat", "grass", "sky", "tree", "road"]
    reference = Segmenter(folder, disk_cache=False).encode_vocabulary(names)
    _edit(folder, _set("text_batch", 2))
    seg = Segmenter(folder, disk_cache=False)
    calls = []
    run = seg.backend.run
    seg.backend.run = lambda graph, inputs, **kw: (
        calls.append(len(next(iter(inputs.values())))) or run(graph, inputs, **kw)
    )
    got = seg.encode_vocabulary(names)
    texts = len(names) * len(seg.templates)
    assert calls == [2] * (texts // 2) + ([texts % 2] if texts % 2 else [])
    assert np.allclose(got, reference, atol=1e-6)
