"""Data: the prepared layouts, their checks, the class lists, the synthetic set, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from escnet.data import SPECS, DatasetError, SyntheticConfig, generate, get_spec, open_dataset
from escnet.data.specs import packaged_class_names, spec_class_names, spec_prompt_names
from escnet.data.transforms import AugmentConfig, augment

EXPECTED_CLASSES = {
    "coco171": 171,
    "coco171-val": 171,
    "ade150": 150,
    "ade847": 847,
    "pc59": 59,
    "pc459": 459,
    "voc20": 20,
    "voc20b": 21,
}


def write_pair(root: Path, name: str, stem: str, label: np.ndarray, image_size: tuple[int, int] | None = None) -> None:
    """An image and a label map in ``name``'s layout under ``root``."""
    spec = get_spec(name)
    base = root / spec.subdir
    h, w = image_size or label.shape
    (base / spec.image_dir).mkdir(parents=True, exist_ok=True)
    (base / spec.label_dir).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(base / spec.image_dir / f"{stem}.jpg")
    dtype = np.uint16 if spec.label_ext == ".tif" else np.uint8
    Image.fromarray(label.astype(dtype)).save(base / spec.label_dir / f"{stem}{spec.label_ext}")


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASSES))
def test_each_layout_loads(tmp_path: Path, name: str) -> None:
    spec = get_spec(name)
    k = EXPECTED_CLASSES[name]
    label = np.zeros((12, 16), dtype=np.int64)
    label[:4] = k - 1  # the last class
    label[4:8, :5] = 3
    label[8:, :] = spec.ignore_values[0]
    write_pair(tmp_path, name, "a", label)
    write_pair(tmp_path, name, "b", np.ones((6, 8), dtype=np.int64))
    ds = open_dataset(name, tmp_path)
    assert len(ds) == 2 and ds.num_classes == k
    s = ds[0]
    assert s.name == "a" and s.image.shape == (12, 16, 3) and s.image.dtype == np.uint8
    assert s.label.shape == (12, 16)
    assert (s.label[:4] == k - 1).all() and (s.label[4:8, :5] == 3).all()
    assert (s.label[8:] == ds.ignore_index).all()
    assert ds[1].label.shape == (6, 8)
    # the data set's own folder works as the root too
    assert len(open_dataset(name, tmp_path / spec.subdir)) == 2
    assert len(open_dataset(name, tmp_path, limit=1)) == 1


def test_class_lists_shipped() -> None:
    for name, k in EXPECTED_CLASSES.items():
        names = spec_class_names(SPECS[name])
        assert len(names) == k and len(set(names)) == k
    assert packaged_class_names("classes_ade150.txt")[:3] == ["wall", "building", "sky"]
    assert spec_class_names(SPECS["voc20b"])[-1] == "background"
    prompts = spec_prompt_names(SPECS["voc20b"])
    assert len(prompts) == 59 and prompts[:20] == spec_class_names(SPECS["voc20"])


def test_pc459_ignore_values_are_mapped(tmp_path: Path) -> None:
    label = np.array([[0, 458], [459, 65535]])
    write_pair(tmp_path, "pc459", "x", label)
    got = open_dataset("pc459", tmp_path)[0].label
    assert got.tolist() == [[0, 458], [65535, 65535]]


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    write_pair(tmp_path, "ade150", "a", np.zeros((4, 4)))
    spec = get_spec("ade150")
    (tmp_path / spec.subdir / spec.image_dir / "a.jpg").unlink()
    with pytest.raises(DatasetError, match=r"a\.png.*no image"):
        open_dataset("ade150", tmp_path)


def test_size_mismatch_names_the_file(tmp_path: Path) -> None:
    write_pair(tmp_path, "voc20", "bad", np.zeros((4, 4)), image_size=(5, 4))
    ds = open_dataset("voc20", tmp_path)
    with pytest.raises(DatasetError, match=r"bad\.png.*differs from its image bad\.jpg"):
        ds[0]


def test_label_out_of_range_names_the_file(tmp_path: Path) -> None:
    write_pair(tmp_path, "pc59", "oops", np.full((4, 4), 59))
    with pytest.raises(DatasetError, match=r"oops\.png.*\[59\] outside the 59 classes"):
        open_dataset("pc59", tmp_path)[0]


def test_bad_roots_and_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="data root not found"):
        open_dataset("ade150", tmp_path / "nope")
    with pytest.raises(DatasetError, match="prepared layout"):
        open_dataset("ade150", tmp_path)
    with pytest.raises(DatasetError, match="unknown data set"):
        open_dataset("ade151", tmp_path)
    write_pair(tmp_path, "coco171", "c", np.zeros((4, 4)))
    spec = get_spec("coco171")
    (tmp_path / spec.subdir / spec.label_dir / "c.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"c\.png: unreadable label map"):
        open_dataset("coco171", tmp_path)[0]
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / spec.subdir / spec.label_dir / "c.png")
    with pytest.raises(DatasetError, match="expected one channel"):
        open_dataset("coco171", tmp_path)[0]


def test_synthetic_is_deterministic_and_loadable(tmp_path: Path) -> None:
    cfg = SyntheticConfig(num_train=6, num_val=2, size=64, seed=3)
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", cfg)
    generate(tmp_path / "c", SyntheticConfig(num_train=6, num_val=2, size=64, seed=4))
    a = open_dataset("synthetic-train", tmp_path / "a")
    b = open_dataset("synthetic-train", tmp_path / "b")
    c = open_dataset("synthetic-train", tmp_path / "c")
    assert a.class_names == cfg.class_names() and len(a) == 6
    assert len(open_dataset("synthetic", tmp_path / "a")) == 2  # "synthetic" is the val split
    for i in range(len(a)):
        assert np.array_equal(a[i].image, b[i].image) and np.array_equal(a[i].label, b[i].label)
    assert any(not np.array_equal(a[i].label, c[i].label) for i in range(len(a)))
    labels = np.stack([a[i].label for i in range(len(a))])
    assert labels.min() >= 0 and labels.max() < len(cfg.class_names())
    assert (labels >= cfg.num_stuff).any(), "no thing was drawn"


def _components(mask: np.ndarray) -> list[int]:
    """Sizes of the 4-connected components of a boolean mask (a small flood fill)."""
    seen = np.zeros_like(mask, dtype=bool)
    sizes = []
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        stack, size = [(y, x)], 0
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            size += 1
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        sizes.append(size)
    return sizes


def test_synthetic_scenes_have_instances_and_small_objects(tmp_path: Path) -> None:
    cfg = SyntheticConfig(num_train=12, num_val=0, size=64, seed=1)
    ds = open_dataset("synthetic-train", generate(tmp_path, cfg))
    multi_instance, small, two_stuff = 0, 0, 0
    small_area = np.pi * (2 * cfg.min_radius * cfg.size) ** 2
    for i in range(len(ds)):
        label = ds[i].label
        two_stuff += len(np.unique(label[label < cfg.num_stuff])) == 2
        for cls in np.unique(label[label >= cfg.num_stuff]):
            sizes = _components(label == cls)
            multi_instance += len(sizes) > 1
            small += any(s < small_area for s in sizes)
    assert multi_instance > 0 and small > 0 and two_stuff > 0


def test_synthetic_bad_config(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="num_things"):
        generate(tmp_path, SyntheticConfig(num_things=99))
    assert not (tmp_path / "classes.txt").exists()


def test_augment_shapes_and_padding(tmp_path: Path) -> None:
    generate(tmp_path, SyntheticConfig(num_train=1, num_val=0, size=48))
    sample = open_dataset("synthetic-train", tmp_path)[0]
    cfg = AugmentConfig(crop=64, scale_min=0.5, scale_max=0.5)
    x, y = augment(sample, cfg, np.random.default_rng(0), 255)
    assert x.shape == (3, 64, 64) and y.shape == (64, 64) and y.dtype.is_floating_point is False
    # the 48 px image scaled to 32 px sits in the top rows (left, or right when flipped); the rest is ignore
    assert (y[32:, :] == 255).all() and int((y != 255).sum()) == 32 * 32
    x2, y2 = augment(sample, cfg, np.random.default_rng(0), 255)
    assert x.equal(x2) and y.equal(y2)


def test_make_synthetic_cli(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from escnet.data.make_synthetic import main

    app = typer.Typer()
    app.command()(main)
    r = CliRunner().invoke(app, [str(tmp_path / "s"), "--num-train", "2", "--num-val", "1", "--size", "32"])
    assert r.exit_code == 0, r.output
    assert len(open_dataset("synthetic-train", tmp_path / "s")) == 2
    r = CliRunner().invoke(app, [str(tmp_path / "t"), "--num-stuff", "0"])
    assert r.exit_code == 2 and "num_stuff" in r.output and "Traceback" not in r.output
