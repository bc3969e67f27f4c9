"""Library-level input handling: image files, arrays, vocabularies (one-line InputErrors or correct results)."""

import warnings

import numpy as np
import pytest
from escnet_runtime import ClassNameTruncatedWarning, InputError, Segmenter
from escnet_runtime.image_io import load_image
from PIL import Image
from support.artifacts import tiny_artifacts


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    folder = tiny_artifacts(tmp_path_factory)[0]
    return Segmenter(folder, disk_cache=False).set_vocabulary(["cat", "sky", "grass"])


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 128]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    got = load_image(tmp_path / "g16.png")
    assert got.shape == (1, 4, 3) and got.dtype == np.uint8
    assert got[0, :, 0].tolist() == [0, 100, 255, 0] and (got[..., 0] == got[..., 2]).all()


def test_rgba_drops_alpha_and_gray_is_replicated(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    assert (load_image(tmp_path / "a.png") == rgba[..., :3]).all()
    gray = rgba[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    assert (load_image(tmp_path / "g.png") == gray[..., None]).all()


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 20, 3), dtype=np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees for display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (20, 10, 3)


def test_float_images_and_limits_are_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), dtype=np.float32), mode="F").save(tmp_path / "f.tiff")
    with pytest.raises(InputError, match="floating-point"):
        load_image(tmp_path / "f.tiff")
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(InputError, match="over the limit"):
        load_image(tmp_path / "big.png", max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own limit is restored


@pytest.mark.parametrize(
    "image,expect",
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8), np.uint8), "shape"),
        (np.zeros((8, 8, 4), np.uint8), "shape"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        ([1, 2, 3], "numpy array"),
    ],
)
def test_bad_arrays(seg, image, expect):
    with pytest.raises(InputError, match=expect):
        seg.segment(image)


def test_results_have_the_images_sizes(seg):
    tiny = np.full((1, 1, 3), 9, np.uint8)
    tall = np.random.default_rng(0).integers(0, 256, (300, 7, 3), dtype=np.uint8)
    a, b = seg.segment([tiny, tall])
    assert a.labels.shape == (1, 1) and b.labels.shape == (300, 7) and b.labels.dtype == np.int32
    with pytest.raises(InputError, match="no images"):
        seg.segment([])


@pytest.mark.parametrize(
    "names,expect",
    [([], "empty"), ("cat", "list of strings"), (["cat", " CAT "], "duplicate"), (["cat", ""], "non-blank"),
     (["cat", 3], "non-blank")],
)  # fmt: skip
def test_bad_vocabularies(seg, names, expect):
    with pytest.raises(InputError, match=expect):
        seg.encode_vocabulary(names)


def test_vocabulary_needed_before_segment(tmp_path_factory):
    fresh = Segmenter(tiny_artifacts(tmp_path_factory)[0], disk_cache=False)
    with pytest.raises(InputError, match="set_vocabulary"):
        fresh.segment(np.zeros((4, 4, 3), np.uint8))


def test_long_names_warn_on_every_encode(seg):
    long_name = "x" * 500
    for _ in range(2):  # a miss, then a cache hit: both warn
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            emb = seg.encode_vocabulary(["cat", long_name])
        assert [w.category for w in caught] == [ClassNameTruncatedWarning]
        assert emb.shape[:2] == (2, 1) and np.isfinite(emb).all()
