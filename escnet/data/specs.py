"""Data set layouts (the detectron2 / CAT-Seg prepared layouts) and their class-name lists.

Each :class:`DatasetSpec` says where the images and label maps of one split live relative to
the data root, which label values mean "ignore", and which class names the labels index.
The class lists are package data files (``classes_*.txt``, one name per line).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import DatasetError

IGNORE_INDEX = 255  # ignore value of the 8-bit label sets (and of training)
IGNORE_INDEX_16 = 65535  # ignore value of the 16-bit (TIFF) label sets with more than 255 classes
CLASSES_FILE = "classes.txt"  # a custom / synthetic set's own class list, at its root


@dataclass(frozen=True)
class DatasetSpec:
    """One split of one data set in its prepared layout.

    ``ignore_values`` are the label values that mean "no label"; the loader maps each of them
    to ``ignore_index``. ``prompt_file``: when the prompt vocabulary differs from the label
    classes (VOC-20b: 59 prompts, the 39 beyond the first 20 all mean "background"),
    predictions at index ``>= merge_from`` are mapped to class ``merge_from``.
    """

    name: str
    subdir: str  # folder under the data root ("" for a custom set that is the root itself)
    image_dir: str
    label_dir: str
    label_ext: str  # ".png" (8-bit) or ".tif" (16-bit)
    class_file: str  # package data file, or CLASSES_FILE for a set's own list
    ignore_values: tuple[int, ...] = (IGNORE_INDEX,)
    ignore_index: int = IGNORE_INDEX
    prompt_file: str | None = None
    merge_from: int | None = None
    description: str = ""


_SPECS = (
    DatasetSpec(
        "coco171",
        "coco-stuff",
        "images/train2017",
        "annotations_detectron2/train2017",
        ".png",
        "classes_coco_stuff_171.txt",
        description="COCO-Stuff 171, train2017 (training set)",
    ),
    DatasetSpec(
        "coco171-val",
        "coco-stuff",
        "images/val2017",
        "annotations_detectron2/val2017",
        ".png",
        "classes_coco_stuff_171.txt",
        description="COCO-Stuff 171, val2017",
    ),
    DatasetSpec(
        "ade150",
        "ADEChallengeData2016",
        "images/validation",
        "annotations_detectron2/validation",
        ".png",
        "classes_ade150.txt",
        description="ADE20K-150 validation",
    ),
    DatasetSpec(
        "ade847",
        "ADE20K_2021_17_01",
        "images_detectron2/validation",
        "annotations_detectron2/validation",
        ".tif",
        "classes_ade847.txt",
        ignore_values=(IGNORE_INDEX_16,),
        ignore_index=IGNORE_INDEX_16,
        description="ADE20K-847 (full) validation, 16-bit TIFF labels",
    ),
    DatasetSpec(
        "pc59",
        "VOCdevkit/VOC2010",
        "JPEGImages",
        "annotations_detectron2/pc59_val",
        ".png",
        "classes_pc59.txt",
        description="PASCAL-Context-59 validation",
    ),
    DatasetSpec(
        "pc459",
        "VOCdevkit/VOC2010",
        "JPEGImages",
        "annotations_detectron2/pc459_val",
        ".tif",
        "classes_pc459.txt",
        ignore_values=(459, IGNORE_INDEX_16),  # CAT-Seg registers 459 as the ignore label
        ignore_index=IGNORE_INDEX_16,
        description="PASCAL-Context-459 validation, 16-bit TIFF labels",
    ),
    DatasetSpec(
        "voc20",
        "VOCdevkit/VOC2012",
        "JPEGImages",
        "annotations_detectron2/val",
        ".png",
        "classes_voc20.txt",
        description="PASCAL VOC-20 validation (background ignored)",
    ),
    DatasetSpec(
        "voc20b",
        "VOCdevkit/VOC2012",
        "JPEGImages",
        "annotations_detectron2_bg/val",
        ".png",
        "classes_voc20b.txt",
        prompt_file="classes_voc20b_prompts.txt",
        merge_from=20,
        description="PASCAL VOC-20 with background (class 20) validation",
    ),
)
SPECS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}


def synthetic_spec(split: str = "train") -> DatasetSpec:
    """The synthetic / custom layout: ``images/<split>``, ``annotations_detectron2/<split>``,
    and the set's own ``classes.txt`` at the root."""
    return DatasetSpec(
        f"synthetic-{split}",
        "",
        f"images/{split}",
        f"annotations_detectron2/{split}",
        ".png",
        CLASSES_FILE,
        description=f"synthetic / custom set, split {split}",
    )


def get_spec(name: str) -> DatasetSpec:
    """A known data set by name; ``synthetic`` / ``synthetic-<split>`` for the custom layout."""
    if name == "synthetic":
        return synthetic_spec("val")
    if name.startswith("synthetic-"):
        return synthetic_spec(name.removeprefix("synthetic-"))
    if name not in SPECS:
        raise DatasetError(f"unknown data set {name!r}; expected one of {', '.join([*SPECS, 'synthetic'])}")
    return SPECS[name]


def parse_class_names(text: str, source: str) -> list[str]:
    """One class name per line; blank lines are an error (they would shift every index)."""
    lines = text.splitlines()
    names = [line.strip() for line in lines]
    if not names:
        raise DatasetError(f"{source}: empty class list")
    for i, name in enumerate(names):
        if not name:
            raise DatasetError(f"{source}: line {i + 1} is blank; expected one class name per line")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DatasetError(f"{source}: duplicate class names {dup[:5]}")
    return names


def read_class_file(path: str | Path) -> list[str]:
    """A class list from a file on disk (a custom set's ``classes.txt``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: class list not found (one class name per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the class list: {e}") from None
    return parse_class_names(text, str(path))


def packaged_class_names(file: str) -> list[str]:
    """A class list shipped with escnet (``escnet/data/classes_*.txt``)."""
    ref = resources.files("escnet.data").joinpath(file)
    return parse_class_names(ref.read_text(encoding="utf-8"), f"escnet/data/{file}")


def spec_class_names(spec: DatasetSpec, root: Path | None = None) -> list[str]:
    """The label classes of ``spec`` (``root`` is needed for a set's own ``classes.txt``)."""
    if spec.class_file == CLASSES_FILE:
        if root is None:
            raise DatasetError(f"{spec.name}: the class list is the set's own {CLASSES_FILE}; give the data root")
        return read_class_file(root / CLASSES_FILE)
    return packaged_class_names(spec.class_file)


def spec_prompt_names(spec: DatasetSpec, root: Path | None = None) -> list[str]:
    """The vocabulary given to the model: the prompt list when there is one, else the classes."""
    if spec.prompt_file is not None:
        return packaged_class_names(spec.prompt_file)
    return spec_class_names(spec, root)
