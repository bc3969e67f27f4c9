"""The numpy pre/post-processing against torch's own ops (escnet/inference.py's definitions)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from escnet_runtime import postprocess
from escnet_runtime.contract import Preprocess
from escnet_runtime.postprocess import sigmoid, upsample_and_label
from escnet_runtime.preprocess import view
from escnet_runtime.resize import resize_bilinear
from escnet_runtime.sliding import FoldAccumulator, WindowGrid, sliding_views

from escnet.inference import preprocess, sliding_geometry


@pytest.fixture(autouse=True)
def torch_threads():
    """The reference is torch's multi-threaded CPU kernel: with one thread torch takes another
    upsampling path (3 channels) that differs from its own multi-threaded result in the last bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


CLIP = Preprocess(128, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def _torch_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return F.interpolate(torch.from_numpy(x)[None], size, mode="bilinear", align_corners=False)[0].numpy()


@pytest.mark.parametrize(
    "shape,size",
    [((3, 100, 150), (128, 128)), ((7, 32, 32), (128, 128)), ((3, 480, 640), (384, 384)), ((5, 384, 384), (640, 640)),
     ((3, 7, 3), (640, 640)), ((4, 128, 128), (100, 150)), ((2, 1000, 700), (384, 384))],
)  # fmt: skip
def test_resize_is_bit_identical_to_torch(shape, size):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert (resize_bilinear(x, size) == _torch_resize(x, size)).all()


@pytest.mark.parametrize("shape,size", [((3, 128, 128), (1, 1)), ((3, 50, 60), (33, 77)), ((5, 1, 1), (128, 128))])
def test_small_resizes_agree_to_float32_rounding(shape, size):
    # torch takes another (channels-last) kernel when out_h + out_w <= 128: last-bit differences only
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(resize_bilinear(x, size), _torch_resize(x, size), rtol=0, atol=1e-6)


@pytest.mark.parametrize("hw", [(100, 150), (128, 128), (1, 1), (641, 9)])
def test_view_equals_reference_preprocess(hw):
    image = np.random.default_rng(2).integers(0, 256, (*hw, 3), dtype=np.uint8)
    normalised = preprocess(torch.from_numpy(image))  # (1, 3, H, W) at the image's size
    for size in (128, 640):
        ref = F.interpolate(normalised, (size, size), mode="bilinear", align_corners=False)[0].numpy()
        got = view(image, size, CLIP)
        tol = 0 if hw != (1, 1) else 1e-6
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("size", [128, 384])
def test_sliding_windows_and_fold_equal_torch(size):
    grid = WindowGrid.for_size(size)
    stride, big = grid.stride, grid.big
    assert (big, stride) == sliding_geometry(size)  # the reference's geometry
    image = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    full = F.interpolate(preprocess(torch.from_numpy(image)), (big, big), mode="bilinear", align_corners=False)
    windows = F.unfold(full, kernel_size=size, stride=stride)
    n = windows.shape[-1]
    ref_views = windows[0].T.reshape(n, 3, size, size).numpy()
    views = sliding_views(image, Preprocess(size, CLIP.mean, CLIP.std), grid)
    assert len(grid.corners) == n and (views[:-1] == ref_views).all()

    t = 3
    probs = np.random.default_rng(4).random((n + 1, t, size, size)).astype(np.float32)
    p = torch.from_numpy(probs)
    summed = F.fold(p[:-1].reshape(n, -1).T[None], (big, big), kernel_size=size, stride=stride)
    ones = F.unfold(torch.ones(1, 1, big, big), kernel_size=size, stride=stride)
    count = F.fold(ones, (big, big), kernel_size=size, stride=stride)
    glob = F.interpolate(p[-1:], (big, big), mode="bilinear", align_corners=False)
    ref = ((summed / count + glob) / 2.0)[0].numpy()
    acc = FoldAccumulator(grid, t)
    for i in reversed(range(n)):
        acc.add(i, probs[i])
    got = acc.finish(probs[-1])
    assert (np.isnan(got) == np.isnan(ref)).all()
    assert (got[~np.isnan(got)] == ref[~np.isnan(ref)]).all()
    with pytest.raises(ValueError, match="descending"):
        FoldAccumulator(grid, t).add(0, probs[0])


def test_blocked_upsample_equals_one_resize(monkeypatch):
    scores = np.random.default_rng(5).random((6, 128, 128)).astype(np.float32)
    out = (333, 517)
    full = _torch_resize(scores, out)
    whole = upsample_and_label(scores, out, keep_scores=True)
    monkeypatch.setattr(postprocess, "BLOCK_BYTES", 1)  # one output row per block
    rows = upsample_and_label(scores, out, keep_scores=True)
    assert (whole.scores == full).all() and (rows.scores == full).all()
    assert (whole.labels == full.argmax(0)).all() and (rows.labels == whole.labels).all()


@pytest.mark.parametrize("threads", [1, 3])
def test_rows_on_threads_equal_one_thread(monkeypatch, threads):
    """Blocks of rows resized on several threads write the very values one thread writes, NaN included."""
    scores = np.random.default_rng(6).random((5, 97, 131)).astype(np.float32)
    scores[2, 40:45, 60:70] = np.nan
    out = (301, 211)
    monkeypatch.setattr(postprocess, "POST_THREADS", 1)
    want = upsample_and_label(scores, out, keep_scores=True)
    monkeypatch.setattr(postprocess, "POST_THREADS", threads)
    monkeypatch.setattr(postprocess, "BLOCK_BYTES", 16 * 5 * 211 * threads * 7)  # seven rows per block
    got = upsample_and_label(scores, out, keep_scores=True)
    assert np.array_equal(got.scores, want.scores, equal_nan=True) and (got.labels == want.labels).all()
    assert np.array_equal(got.best, want.best, equal_nan=True)
    nan = np.isnan(got.scores[2])
    assert nan.any() and (got.labels[nan] == 2).all()  # NaN wins the arg-max, on every thread


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("group", [1, 2, 7])  # classes per piece of work
def test_view_probabilities_on_threads_equal_one_thread(monkeypatch, threads, group):
    logits = (4 * np.random.default_rng(8).standard_normal((7, 24, 24))).astype(np.float32)
    logits[3, 5, 5] = np.nan
    monkeypatch.setattr(postprocess, "POST_THREADS", 1)
    want = postprocess.view_probabilities(logits, 97)
    monkeypatch.setattr(postprocess, "POST_THREADS", threads)
    monkeypatch.setattr(postprocess, "BLOCK_BYTES", 8 * 97 * 97 * threads * group)
    got = postprocess.view_probabilities(logits, 97)
    assert got.shape == (7, 97, 97) and np.array_equal(got, want, equal_nan=True) and np.isnan(got[3]).any()


def test_sigmoid_matches_torch_and_saturates():
    x = np.concatenate([np.random.default_rng(6).standard_normal(10000) * 8, [-1e4, 1e4]]).astype(np.float32)
    np.testing.assert_allclose(sigmoid(x), torch.from_numpy(x).sigmoid().numpy(), rtol=1e-6, atol=1e-7)
    assert np.isfinite(sigmoid(x)).all()


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_labels_over_class_chunks_equal_all_classes_at_once(chunk):
    """label_classes merges per-chunk arg-maxes like one arg-max over all classes (torch's rules:
    first maximum wins ties, a NaN wins), and returns bit-identical scores."""
    rng = np.random.default_rng(chunk)
    scores = rng.random((20, 9, 11), dtype=np.float32)
    scores[5] = scores[12]  # exact ties between classes in different chunks
    scores[17, 2, 3] = np.nan  # a NaN wins its pixel ...
    scores[19, 2, 3] = np.nan  # ... the first NaN
    scores[:, 4, 4] = 0.25  # every class tied: class 0
    out = (23, 31)
    whole = upsample_and_label(scores, out, keep_scores=True)
    parts = postprocess.label_classes(lambda s, e: scores[s:e], 20, out, keep_scores=True, chunk=chunk)
    np.testing.assert_array_equal(parts.labels, whole.labels)
    np.testing.assert_array_equal(parts.scores, whole.scores)
    ref = torch.from_numpy(whole.scores).argmax(0).numpy()
    np.testing.assert_array_equal(parts.labels, ref)
    assert parts.labels.dtype == np.int32
