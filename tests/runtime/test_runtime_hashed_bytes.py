"""Issue 12, items 2 and 3: engines are built from the bytes that were hashed. A graph swapped
after ``Segmenter(...)`` never runs; external-data files are hashed and handed over from memory."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from escnet_runtime import ManifestError, Segmenter, load_manifest
from escnet_runtime.graph_files import external_locations, verified_graph
from support.artifacts import tiny_artifacts

NAMES = ["cat", "grass", "sky"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)


@pytest.fixture(scope="module")
def artifacts(exported):
    return exported[0]


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "art"
    shutil.copytree(folder, target)
    return target


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x08  # inside the weights: still a loadable graph, other numbers
    path.write_bytes(bytes(data))


def _image() -> np.ndarray:
    return np.random.default_rng(8).integers(0, 256, (40, 52, 3), dtype=np.uint8)


@pytest.mark.parametrize("graph", ["image_encoder.onnx", "decoder.onnx"])
def test_a_graph_swapped_after_construction_is_refused(artifacts, tmp_path, graph):
    folder = _copy(artifacts, tmp_path)
    seg = Segmenter(folder, disk_cache=False).set_vocabulary(NAMES)
    _tamper(folder / graph)
    with pytest.raises(ManifestError, match=f"{graph} does not match the manifest"):
        seg.segment(_image())


def test_a_text_encoder_swapped_after_construction_is_refused(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    seg = Segmenter(folder, disk_cache=False)
    _tamper(folder / "text_encoder.onnx")
    with pytest.raises(ManifestError, match="text_encoder.onnx does not match"):
        seg.set_vocabulary(NAMES)


def test_a_decoder_step_swapped_after_construction_is_refused(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    seg = Segmenter(folder, disk_cache=False, class_chunk=2).set_vocabulary(NAMES)  # 3 classes: the steps run
    _tamper(folder / "decoder_block_1.onnx")
    with pytest.raises(ManifestError, match="decoder_block_1.onnx does not match"):
        seg.segment(_image())


def test_swapping_back_the_original_works(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    seg = Segmenter(folder, disk_cache=False).set_vocabulary(NAMES)
    original = (folder / "decoder.onnx").read_bytes()
    _tamper(folder / "decoder.onnx")
    with pytest.raises(ManifestError):
        seg.segment(_image())
    (folder / "decoder.onnx").write_bytes(original)
    expected = Segmenter(artifacts, disk_cache=False).set_vocabulary(NAMES).segment(_image()).labels
    assert (seg.segment(_image()).labels == expected).all()


def test_unverified_construction_still_hashes_what_it_loads(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    _tamper(folder / "decoder.onnx")
    seg = Segmenter(folder, disk_cache=False, verify=False).set_vocabulary(NAMES)
    with pytest.raises(ManifestError, match="decoder.onnx does not match"):
        seg.segment(_image())


def test_the_vocabulary_is_read_once_at_construction(artifacts, tmp_path):
    folder = _copy(artifacts, tmp_path)
    seg = Segmenter(folder, disk_cache=False)
    vocab = folder / load_manifest(folder).tokenizer.vocab_file
    vocab.write_bytes(b"swapped")  # after construction: the verified bytes are already parsed
    reference = Segmenter(artifacts, disk_cache=False).encode_vocabulary(NAMES)
    assert seg.encode_vocabulary(NAMES).tobytes() == reference.tobytes()
    with pytest.raises(ManifestError, match="does not match"):
        Segmenter(folder, disk_cache=False, verify=False)  # a new one reads (and hashes) it again


def test_graphs_without_external_data_never_need_onnx(artifacts):
    m = load_manifest(artifacts)
    for name in m.graphs:
        graph = verified_graph(artifacts, m, name)
        assert graph.external == {} and external_locations(graph.model, graph.file) == set()


# -- external data ----------------------------------------------------------------------------


def _rehash(folder: Path, names: list[str], drop: tuple[str, ...] = ()) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for name in names:
        data["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    for name in drop:
        data["files"].pop(name)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def external_artifacts(exported, tmp_path_factory):
    """The tiny artifacts with the text encoder re-exported keeping its weights in external data."""
    import torch
    from escnet_export.onnx.graph_export import export_graph
    from escnet_export.onnx.wrappers import graph_modules, model_dims
    from escnet_runtime.contract import TEXT_ENCODER, graph_specs

    from escnet import load_checkpoint

    folder, checkpoint = exported
    target = tmp_path_factory.mktemp("external") / "art"
    shutil.copytree(folder, target)
    model = load_checkpoint(checkpoint, preset="tiny").eval()
    spec = graph_specs(model_dims(model))[TEXT_ENCODER]
    tokens = torch.zeros(2, model.config.clip.context_length, dtype=torch.int64)
    (target / spec.file).unlink()
    graph = export_graph(graph_modules(model)[TEXT_ENCODER], spec, (tokens,), target, 18, external_threshold=0)
    assert graph.external_data
    _rehash(target, list(graph.files))
    return target


def test_external_data_is_hashed_and_loaded_from_memory(artifacts, external_artifacts, tmp_path):
    m = load_manifest(external_artifacts)
    graph = verified_graph(external_artifacts, m, "text_encoder")
    assert set(graph.external) == {"text_encoder.onnx.data"}
    reference = Segmenter(artifacts, disk_cache=False).encode_vocabulary(NAMES)
    here = os.getcwd()
    try:
        os.chdir(tmp_path)  # ONNX Runtime would resolve external data against the working directory
        got = Segmenter(external_artifacts, disk_cache=False).encode_vocabulary(NAMES)
    finally:
        os.chdir(here)
    assert np.abs(got - reference).max() <= 1e-5


def test_unlisted_external_data_is_refused(external_artifacts, tmp_path):
    folder = _copy(external_artifacts, tmp_path)
    _rehash(folder, [], drop=("text_encoder.onnx.data",))
    seg = Segmenter(folder, disk_cache=False)
    with pytest.raises(ManifestError, match="does not list with a sha256"):
        seg.encode_vocabulary(NAMES)


def test_swapped_external_data_is_refused(external_artifacts, tmp_path):
    folder = _copy(external_artifacts, tmp_path)
    seg = Segmenter(folder, disk_cache=False)
    _tamper(folder / "text_encoder.onnx.data")
    with pytest.raises(ManifestError, match="text_encoder.onnx.data does not match"):
        seg.encode_vocabulary(NAMES)


@pytest.mark.parametrize("location", ["../evil.data", "/tmp/evil.data", "sub/../../evil.data"])
def test_external_data_outside_the_folder_is_refused(external_artifacts, tmp_path, location):
    import onnx

    folder = _copy(external_artifacts, tmp_path)
    path = folder / "text_encoder.onnx"
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())
    _rehash(folder, ["text_encoder.onnx"])
    seg = Segmenter(folder, disk_cache=False)
    with pytest.raises(ManifestError, match="not a relative path inside the artifacts folder"):
        seg.encode_vocabulary(NAMES)


# -- TensorRT engines: read once, confined to the engines folder, hashed (TensorRT not needed) --


def _engine_reader(engines_dir: Path, record: dict):
    """The TensorRT backend's engine reader, without TensorRT: only ``_engine_bytes`` is exercised."""
    from escnet_runtime.backends.trt import TrtBackend

    backend = object.__new__(TrtBackend)  # __init__ imports TensorRT, which this machine cannot install
    backend.engines_dir = engines_dir
    backend.build = {"engines": {"decoder": record}}
    return backend


def test_trt_engines_are_read_from_hashed_bytes_inside_their_folder(tmp_path):
    from escnet_runtime.errors import BackendError

    engines = tmp_path / "trt"
    engines.mkdir()
    blob = b"serialized engine bytes"
    (engines / "decoder.engine").write_bytes(blob)
    (tmp_path / "outside.engine").write_bytes(blob)
    good = hashlib.sha256(blob).hexdigest()
    data, path = _engine_reader(engines, {"file": "decoder.engine", "sha256": good})._engine_bytes("decoder")
    assert data == blob and path == engines / "decoder.engine"
    for record, expect in [
        ({"file": "decoder.engine", "sha256": "0" * 64}, "does not match build.json"),
        ({"file": "../outside.engine", "sha256": good}, "not a relative path inside"),
        ({"file": str(tmp_path / "outside.engine"), "sha256": good}, "not a relative path inside"),
        ({"file": "decoder.engine"}, "incomplete"),
    ]:
        with pytest.raises(BackendError, match=expect) as info:
            _engine_reader(engines, record)._engine_bytes("decoder")
        assert good[:8] not in str(info.value) or "expected" in str(info.value)
    os.symlink(tmp_path / "outside.engine", engines / "linked.engine")
    with pytest.raises(BackendError, match="outside the artifacts folder"):
        _engine_reader(engines, {"file": "linked.engine", "sha256": good})._engine_bytes("decoder")
