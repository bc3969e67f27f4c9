"""The decoder over class chunks: step graphs chained by the runtime, against PyTorch and the
all-classes decoder graph, and the errors around it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from escnet_runtime import InputError, ManifestError, Segmenter, load_manifest
from escnet_runtime.chunked_decoder import ChunkedDecoder, _combine, class_spans
from escnet_runtime.contract import (
    DECODER,
    DECODER_OPEN,
    DEFAULT_CLASS_CHUNK,
    IMAGE_ENCODER,
    decoder_step_names,
)
from support.artifacts import tiny_artifacts

from escnet import load_checkpoint
from escnet.inference import predict_scores, preprocess

NAMES = [f"thing {i}" for i in range(11)] + ["sky", "grass", "a red car parked on the street"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder, checkpoint = tiny_artifacts(tmp_path_factory)
    return folder, load_checkpoint(checkpoint, preset="tiny").eval()


class Recorder:
    """Counts which graphs a Segmenter's backend runs (the real backend does the work)."""

    def __init__(self, seg: Segmenter) -> None:
        self.calls: list[str] = []
        run = seg.backend.run

        def recording(graph, inputs, keep_on_device=()):
            self.calls.append(graph)
            return run(graph, inputs, keep_on_device)

        seg.backend.run = recording  # type: ignore[method-assign]


def _image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (90, 140, 3), dtype=np.uint8)


def test_manifest_lists_the_steps(pair):
    folder, model = pair
    manifest = load_manifest(folder)
    assert manifest.decoder_steps == decoder_step_names(model.config.num_blocks)
    assert manifest.decoder_steps == (
        "decoder_open",
        "decoder_block_0",
        "decoder_attend_0",
        "decoder_block_1",
        "decoder_close",
    )
    assert manifest.class_chunk == DEFAULT_CLASS_CHUNK


@pytest.mark.parametrize("chunk", [1, 4])
@pytest.mark.parametrize("sliding", [False, True], ids=["single", "sliding"])
def test_chunked_steps_match_pytorch_and_the_whole_decoder(pair, chunk, sliding):
    folder, model = pair
    image = _image()
    whole = Segmenter(folder, disk_cache=False).set_vocabulary(NAMES)
    chunked = Segmenter(folder, disk_cache=False, class_chunk=chunk).set_vocabulary(NAMES)
    rec_whole, rec_chunked = Recorder(whole), Recorder(chunked)
    a = whole.segment(image, sliding_window=sliding, return_scores=True)
    b = chunked.segment(image, sliding_window=sliding, return_scores=True)

    views = 1 + (4 if sliding else 0)
    assert rec_whole.calls.count(DECODER) == views and DECODER_OPEN not in rec_whole.calls
    n_chunks = len(class_spans(len(NAMES), chunk))
    assert DECODER not in rec_chunked.calls
    assert rec_chunked.calls.count(DECODER_OPEN) == views * n_chunks
    assert len([c for c in rec_chunked.calls if c != IMAGE_ENCODER]) == views * n_chunks * 5  # 5 steps (tiny)

    with torch.no_grad():
        ref = predict_scores(
            model, preprocess(torch.from_numpy(image)), model.embed_classes(NAMES), image.shape[:2], sliding
        ).numpy()
    assert np.abs(b.scores - a.scores).max() < 1e-5
    assert np.abs(b.scores - ref).max() < 1e-4
    assert float((b.labels == ref.argmax(0)).mean()) >= 0.999


def test_vocabulary_within_one_chunk_runs_the_decoder_graph(pair):
    folder, _ = pair
    seg = Segmenter(folder, disk_cache=False, class_chunk=len(NAMES)).set_vocabulary(NAMES)
    rec = Recorder(seg)
    seg.segment(_image())
    assert rec.calls == [IMAGE_ENCODER, DECODER]


def test_many_classes_in_chunks(pair):
    """300 classes in chunks of 64 (uneven last chunk) against PyTorch's decoder over all classes at once."""
    folder, model = pair
    names = [f"object number {i}" for i in range(300)]
    seg = Segmenter(folder, disk_cache=False, class_chunk=64).set_vocabulary(names)
    image = _image()
    x = preprocess(torch.from_numpy(image))
    with torch.no_grad():
        size = model.config.image_size
        view = torch.nn.functional.interpolate(x, (size, size), mode="bilinear", align_corners=False)
        feats = model.encode_image(view)
        ref = model.decode(*feats, model.embed_classes(names), class_chunk=None).numpy()
    features = {"dense_features": feats[0].numpy(), "guidance_a": feats[1].numpy(), "guidance_b": feats[2].numpy()}
    got = seg.decode(features)
    assert got.shape == ref.shape == (1, 300, 4 * model.config.grid, 4 * model.config.grid)
    assert np.abs(got - ref).max() < 1e-4
    assert float((got.argmax(1) == ref.argmax(1)).mean()) >= 0.999


def test_bad_class_chunk_is_refused(pair):
    folder, _ = pair
    with pytest.raises(InputError, match="class_chunk is 0"):
        Segmenter(folder, disk_cache=False, class_chunk=0)
    graphs = load_manifest(folder).graphs
    with pytest.raises(InputError, match="not open, blocks"):
        ChunkedDecoder(object(), ("decoder_open", "decoder_close"), graphs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="reads .*attention_kv.* which no earlier step provides"):
        steps = ("decoder_open", "decoder_attend_0", "decoder_block_1", "decoder_close")
        ChunkedDecoder(object(), steps, graphs)  # type: ignore[arg-type]


def _rewrite_manifest(folder: Path, tmp_path: Path, **changes) -> Path:
    copy = tmp_path / "artifacts"
    shutil.copytree(folder, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data.update(changes)
    (copy / "manifest.json").write_text(json.dumps(data))
    return copy


def test_artifacts_without_steps_use_the_whole_decoder(pair, tmp_path):
    """Artifacts exported before the step graphs existed still load and segment (all classes at once)."""
    folder, _ = pair
    old = _rewrite_manifest(folder, tmp_path, decoder_steps=[], class_chunk=None)
    seg = Segmenter(old, disk_cache=False).set_vocabulary(NAMES)
    assert seg.class_chunk is None
    rec = Recorder(seg)
    seg.segment(_image())
    assert rec.calls == [IMAGE_ENCODER, DECODER]
    with pytest.raises(InputError, match="no decoder step graphs"):
        Segmenter(old, disk_cache=False, class_chunk=4)


def test_manifest_naming_a_missing_step_is_refused(pair, tmp_path):
    folder, _ = pair
    bad = _rewrite_manifest(folder, tmp_path, decoder_steps=["decoder_open", "decoder_block_9", "decoder_close"])
    with pytest.raises(ManifestError, match="decoder_block_9"):
        load_manifest(bad, verify=False)
    bad_chunk = tmp_path / "chunk"
    shutil.copytree(bad, bad_chunk)
    data = json.loads((bad_chunk / "manifest.json").read_text())
    data.update(decoder_steps=list(load_manifest(folder).decoder_steps), class_chunk=0)
    (bad_chunk / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="class_chunk: expected a positive whole number"):
        load_manifest(bad_chunk, verify=False)


@pytest.mark.parametrize("how", ["sum", "logsumexp"])
def test_parts_combine_in_chunk_order_without_touching_the_shares(how):
    """The fold into one copy gives the values of a stacked reduction, bit for bit, and leaves the
    shares (which a backend may still hold) as they were."""
    rng = np.random.default_rng(3)
    shares = [(3 * rng.standard_normal((7, 4, 5))).astype(np.float32) for _ in range(5)]
    before = [s.copy() for s in shares]
    stacked = np.stack(before)
    want = stacked.sum(axis=0) if how == "sum" else np.logaddexp.reduce(stacked, axis=0)
    got = _combine(shares, how)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert all(np.array_equal(s, b) for s, b in zip(shares, before, strict=True))
    with pytest.raises(InputError, match="unknown combination 'max'"):
        _combine(shares, "max")
