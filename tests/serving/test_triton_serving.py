"""The serving logic the Triton Python model runs (escnet_runtime.serving), in process on the tiny
artifacts: the text wire format, per-request limits and errors, vocabularies grouped."""

import numpy as np
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.errors import InputError
from escnet_runtime.serving import ServeLimits, ServeRequest, ServingPipeline, decode_names, encode_names
from support.artifacts import tiny_artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def test_names_round_trip_as_utf8_lines():
    names = ["wall", "tree, oak", "café", "猫"]
    data = encode_names(names)
    assert data.dtype == np.uint8 and data.ndim == 1
    assert decode_names(data) == tuple(names)
    assert decode_names(np.zeros(0, np.uint8)) == ()
    with pytest.raises(InputError, match="line break"):
        encode_names(["a\nb"])
    with pytest.raises(InputError, match="not UTF-8"):
        decode_names(np.frombuffer(b"\xff", np.uint8))
    with pytest.raises(InputError, match="over the limit"):
        decode_names(np.zeros(11, np.uint8), limit=10)


def test_pipeline_answers_each_request_on_its_own(artifacts):
    seg = Segmenter(artifacts, disk_cache=False)
    serve = ServingPipeline(seg, vocabulary=("wall", "sky"), limits=ServeLimits(max_classes=4))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (1, 40, 50, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 30, 30, 3), dtype=np.uint8)
    requests = [
        ServeRequest(a, ("cat", "grass", "sky")),
        ServeRequest(a, None),  # the configured vocabulary
        ServeRequest(b, ("cat", "grass", "sky")),  # shares a batch with the first
        ServeRequest(a, tuple(f"c{i}" for i in range(5))),  # over max_classes
        ServeRequest(np.zeros((1, 0, 0, 3), np.uint8), None),  # empty image
        ServeRequest(a, ("sky", "SKY")),  # duplicates
    ]
    results = serve(requests)
    assert [r.error is None for r in results] == [True, True, True, False, False, False]
    assert "5 classes in one request; at most 4" in results[3].error
    assert "empty" in results[4].error and "duplicate" in results[5].error
    ref = Segmenter(artifacts, disk_cache=False).set_vocabulary(["cat", "grass", "sky"])
    np.testing.assert_array_equal(results[0].labels[0], ref.segment(a[0]).labels)
    for i in range(2):
        np.testing.assert_array_equal(results[2].labels[i], ref.segment(b[i]).labels)
    assert results[2].labels.shape == (2, 30, 30) and results[2].labels.dtype == np.int32
    assert results[1].names == ("wall", "sky") and results[0].names == ("cat", "grass", "sky")


def test_no_classes_and_no_vocabulary_is_an_error(artifacts):
    serve = ServingPipeline(Segmenter(artifacts, disk_cache=False))
    (res,) = serve([ServeRequest(np.zeros((1, 8, 8, 3), np.uint8), None)])
    assert res.error == "no classes given and the repository configures no vocabulary"


@pytest.mark.parametrize(
    "images,expect",
    [
        (None, "no 'image' input"),
        ([[[[1, 2, 3]]]], "UINT8 tensor"),
        (np.full((1, 4, 4, 3), 300, np.int32), "values must be 0..255 (UINT8), got 300"),
        (np.full((1, 4, 4, 3), -1, np.int16), "got -1"),
        (np.zeros((1, 4, 4, 3), np.float32), "must be UINT8"),
        (np.zeros((4, 4, 3), np.uint8), "[B, H, W, 3]"),
        (np.zeros((1, 4, 4, 4), np.uint8), "[B, H, W, 3]"),
        (np.zeros((0, 4, 4, 3), np.uint8), "empty"),
    ],
)
def test_malformed_requests_are_one_line_without_paths(artifacts, images, expect):
    serve = ServingPipeline(Segmenter(artifacts, disk_cache=False), vocabulary=("wall", "sky"))
    good = ServeRequest(np.zeros((1, 8, 8, 3), np.uint8), None)
    bad, ok = serve([ServeRequest(images, None), good])  # type: ignore[arg-type]
    assert bad.error is not None and expect in bad.error, bad.error
    assert "\n" not in bad.error and "/" not in bad.error  # no file path of the server
    assert "Traceback" not in bad.error and "File " not in bad.error
    assert ok.error is None and ok.labels is not None and ok.labels.shape == (1, 8, 8)


def test_wider_integer_images_in_range_are_served(artifacts):
    serve = ServingPipeline(Segmenter(artifacts, disk_cache=False), vocabulary=("wall", "sky"))
    image = np.random.default_rng(3).integers(0, 256, (1, 16, 20, 3), dtype=np.uint8)
    wide, narrow = serve([ServeRequest(image.astype(np.int32), None), ServeRequest(image, None)])
    assert wide.error is None and narrow.error is None
    np.testing.assert_array_equal(wide.labels, narrow.labels)
