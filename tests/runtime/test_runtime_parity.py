"""End-to-end parity with PyTorch (escnet.inference) on the tiny preset, single view and sliding window."""

import numpy as np
import pytest
import torch
from escnet_runtime import Segmenter
from support.artifacts import tiny_artifacts

from escnet import load_checkpoint
from escnet.inference import predict_scores, preprocess

CLASSES = ["cat", "grass", "sky", "tree", "person", "road", "a red car parked on the street"]
MIN_AGREEMENT = 0.999


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder, checkpoint = tiny_artifacts(tmp_path_factory)
    model = load_checkpoint(checkpoint, preset="tiny").eval()
    seg = Segmenter(folder, backend="ort-cpu", disk_cache=False, batch_size=3).set_vocabulary(CLASSES)
    return model, seg


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:213, 0:171]
    smooth = np.stack([(xx * 255 // 170), (yy * 255 // 212), ((xx + yy) % 256)], axis=-1).astype(np.uint8)
    return [noise, smooth, rng.integers(0, 256, (37, 300, 3), dtype=np.uint8)]


def _reference(model, image: np.ndarray, sliding: bool) -> torch.Tensor:
    with torch.no_grad():
        text = model.embed_classes(CLASSES)
        x = preprocess(torch.from_numpy(image))
        return predict_scores(model, x, text, image.shape[:2], sliding_window=sliding)  # (T, H, W)


@pytest.mark.parametrize("sliding", [False, True], ids=["single", "sliding"])
def test_labels_and_scores_match_pytorch(pair, sliding):
    model, seg = pair
    for image in _images():
        ref = _reference(model, image, sliding).numpy()
        res = seg.segment(image, sliding_window=sliding, return_scores=True)
        assert res.labels.shape == image.shape[:2] and res.scores.shape == ref.shape
        agreement = float((res.labels == ref.argmax(0)).mean())
        assert agreement >= MIN_AGREEMENT, f"labels agree on {agreement:.5f} of pixels"
        assert np.isfinite(ref).all() and np.isfinite(res.scores).all()
        assert np.abs(res.scores - ref).max() < 1e-4


def test_text_embeddings_match_pytorch(pair):
    model, seg = pair
    names = [*CLASSES, "a very long class name " * 25, "Ünïcödé &amp; punctuation!?"]  # incl. one beyond 77 tokens
    with torch.no_grad():
        ref = model.embed_classes(names).numpy()
    with pytest.warns(UserWarning, match="truncated"):
        got = seg.encode_vocabulary(names)
    assert np.abs(got - ref).max() < 1e-5 and np.abs(seg.embeddings - ref[: len(CLASSES)]).max() < 1e-5


def test_batch_equals_one_by_one(pair):
    _, seg = pair
    one = Segmenter(seg.folder, disk_cache=False, batch_size=1).set_vocabulary(CLASSES)
    images = _images()
    batch = seg.segment(images)
    for image, res in zip(images, batch, strict=True):
        assert (one.segment(image).labels == res.labels).mean() >= MIN_AGREEMENT
    same = [images[0], images[0].copy()]
    stacked = seg.segment(np.stack(same))
    assert len(stacked) == 2 and (stacked[0].labels == stacked[1].labels).all()
