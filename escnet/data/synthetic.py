"""A procedural segmentation data set, deterministic from a seed.

Scenes: one or two textured "stuff" backgrounds split by a wavy horizon, then several
instances of textured "thing" shapes (some small), drawn in order so later shapes occlude
earlier ones; the label map records what is visible. Written in the same layout the loaders
read (:func:`escnet.data.specs.synthetic_spec`): ``images/<split>/*.png``,
``annotations_detectron2/<split>/*.png`` and ``classes.txt``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io_utils import atomic_path
from .errors import DatasetError
from .specs import CLASSES_FILE

# (name, RGB base colour, texture). Stuff fills the background.
STUFF: tuple[tuple[str, tuple[int, int, int], str], ...] = (
    ("sky", (130, 185, 235), "gradient"),
    ("grass", (60, 140, 50), "noise"),
    ("sand", (215, 190, 135), "speckle"),
    ("water", (35, 80, 160), "waves"),
    ("brick wall", (150, 65, 45), "bricks"),
)
# (name, RGB base colour, shape, texture). Things are the shapes.
THINGS: tuple[tuple[str, tuple[int, int, int], str, str], ...] = (
    ("red ball", (215, 35, 35), "disc", "flat"),
    ("yellow star", (245, 215, 40), "star", "flat"),
    ("purple box", (125, 55, 165), "square", "stripes"),
    ("orange triangle", (245, 135, 25), "triangle", "dots"),
    ("white ring", (240, 240, 235), "ring", "flat"),
    ("cyan diamond", (40, 200, 210), "diamond", "checker"),
    ("black cross", (25, 25, 25), "cross", "flat"),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Class indices: the stuff classes first, then the things."""

    num_train: int = 200
    num_val: int = 50
    size: int = 128  # square images, pixels
    num_stuff: int = 3  # first N of STUFF
    num_things: int = 5  # first N of THINGS
    max_thing_classes: int = 3  # distinct thing classes per scene
    max_instances: int = 3  # instances per thing class per scene
    min_radius: float = 0.05  # object radius range, fraction of the image size
    max_radius: float = 0.22
    small_fraction: float = 0.25  # share of objects drawn at the small end (min_radius..2*min_radius)
    colour_jitter: float = 0.12  # relative brightness / per-channel jitter
    seed: int = 0

    def class_names(self) -> list[str]:
        return [s[0] for s in STUFF[: self.num_stuff]] + [t[0] for t in THINGS[: self.num_things]]

    def check(self) -> None:
        if not 1 <= self.num_stuff <= len(STUFF):
            raise DatasetError(f"num_stuff must be in 1..{len(STUFF)}, got {self.num_stuff}")
        if not 1 <= self.num_things <= len(THINGS):
            raise DatasetError(f"num_things must be in 1..{len(THINGS)}, got {self.num_things}")
        if self.size < 16 or self.num_train < 0 or self.num_val < 0:
            raise DatasetError("size must be >= 16 and the image counts >= 0")
        if not 0 < self.min_radius <= self.max_radius < 1:
            raise DatasetError("need 0 < min_radius <= max_radius < 1")


def _texture(kind: str, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brightness modulation in about [-1, 1] over the pixel grid (H, W)."""
    h, w = yy.shape
    freq = rng.uniform(0.25, 0.5)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    if kind == "flat":
        return np.zeros_like(yy)
    if kind == "gradient":
        return (yy / h - 0.5) * 1.5
    if kind == "stripes":
        return np.sign(np.sin(u * freq))
    if kind == "waves":
        return np.sin(u * freq * 0.6 + np.sin(xx * 0.15) * 2)
    if kind == "dots":
        return (np.sin(xx * freq * 1.5) * np.sin(yy * freq * 1.5) > 0.5) * 2.0 - 1.0
    if kind == "checker":
        return np.sign(np.sin(xx * freq) * np.sin(yy * freq))
    if kind == "bricks":
        row = np.floor(yy / 8)
        mortar = (yy % 8 < 1.5) | ((xx + 8 * (row % 2)) % 16 < 1.5)
        return np.where(mortar, 1.5, 0.0) - 0.3
    if kind == "speckle":
        return rng.uniform(-1, 1, size=(h, w)) * (rng.uniform(size=(h, w)) > 0.7)
    if kind == "noise":
        coarse = rng.uniform(-1, 1, size=(h // 8 + 2, w // 8 + 2))
        return np.kron(coarse, np.ones((8, 8)))[:h, :w] * 0.7 + rng.uniform(-0.3, 0.3, size=(h, w))
    raise ValueError(f"unknown texture {kind!r}")


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, rot: float) -> np.ndarray:
    """Boolean (H, W) mask of one shape centred at (cy, cx), radius r, rotated by rot."""
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = -dx * np.sin(rot) + dy * np.cos(rot)
    d = np.hypot(u, v)
    theta = np.arctan2(v, u)
    if shape == "disc":
        return d < r
    if shape == "ring":
        return (d < r) & (d > 0.55 * r)
    if shape == "square":
        return (np.abs(u) < 0.8 * r) & (np.abs(v) < 0.8 * r)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) < r
    if shape == "star":
        return d < r * (0.6 + 0.4 * np.cos(5 * theta))
    if shape == "triangle":
        # inside the three half-planes of an equilateral triangle of circumradius r
        inside = np.ones_like(d, dtype=bool)
        for k in range(3):
            a = rot + np.pi / 2 + k * 2 * np.pi / 3
            inside &= dx * np.cos(a) + dy * np.sin(a) < 0.5 * r
        return inside
    if shape == "cross":
        return ((np.abs(u) < 0.28 * r) & (np.abs(v) < r)) | ((np.abs(v) < 0.28 * r) & (np.abs(u) < r))
    raise ValueError(f"unknown shape {shape!r}")


def _paint(base: tuple[int, int, int], texture: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """Colour (H, W, 3) float: jittered base colour modulated by the texture."""
    colour = np.asarray(base, dtype=np.float64) * rng.uniform(1 - jitter, 1 + jitter, size=3)
    return colour[None, None, :] + 35.0 * texture[..., None]


def render_scene(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One scene -> image (S, S, 3) uint8 and label (S, S) uint8 (every pixel has a class)."""
    s = config.size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)  # (S, S) each
    image = np.zeros((s, s, 3), dtype=np.float64)
    label = np.zeros((s, s), dtype=np.uint8)

    stuff = rng.choice(config.num_stuff, size=min(2, config.num_stuff), replace=False)
    horizon = s * rng.uniform(0.3, 0.7) + s * 0.06 * np.sin(xx * rng.uniform(0.03, 0.1) + rng.uniform(0, 6))
    regions = (
        [np.ones((s, s), dtype=bool)] if len(stuff) == 1 or rng.uniform() < 0.25 else [yy < horizon, yy >= horizon]
    )
    for cls, region in zip(stuff, regions, strict=False):
        name, colour, tex = STUFF[cls]
        image[region] = _paint(colour, _texture(tex, yy, xx, rng), rng, config.colour_jitter)[region]
        label[region] = cls

    n_classes = rng.integers(1, min(config.max_thing_classes, config.num_things) + 1)
    thing_classes = rng.choice(config.num_things, size=n_classes, replace=False)
    objects = [c for c in thing_classes for _ in range(rng.integers(1, config.max_instances + 1))]
    rng.shuffle(objects)
    for cls in objects:
        name, colour, shape, tex = THINGS[cls]
        lo = config.min_radius * s
        hi = 2 * lo if rng.uniform() < config.small_fraction else config.max_radius * s
        r = rng.uniform(lo, max(hi, lo))
        cy, cx = rng.uniform(0, s, size=2)
        mask = _shape_mask(shape, yy, xx, cy, cx, r, rng.uniform(0, 2 * np.pi))
        image[mask] = _paint(colour, _texture(tex, yy, xx, rng), rng, config.colour_jitter)[mask]
        label[mask] = config.num_stuff + cls

    image *= rng.uniform(1 - config.colour_jitter, 1 + config.colour_jitter)  # global brightness
    image += rng.normal(0.0, 4.0, size=image.shape)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write_png(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def generate(root: str | Path, config: SyntheticConfig | None = None) -> Path:
    """Write the set under ``root`` (train and val splits, ``classes.txt``, ``synthetic.json``).

    Deterministic: image i of a split depends only on (seed, split, i).
    """
    config = config or SyntheticConfig()
    config.check()
    root = Path(root)
    for split, count, split_id in (("train", config.num_train, 0), ("val", config.num_val, 1)):
        for i in range(count):
            rng = np.random.default_rng([config.seed, split_id, i])
            image, label = render_scene(config, rng)
            _write_png(image, root / "images" / split / f"{i:06d}.png")
            _write_png(label, root / "annotations_detectron2" / split / f"{i:06d}.png")
    with atomic_path(root / CLASSES_FILE) as tmp:
        tmp.write_text("".join(f"{n}\n" for n in config.class_names()), encoding="utf-8")
    with atomic_path(root / "synthetic.json") as tmp:
        tmp.write_text(json.dumps(asdict(config), indent=2), encoding="utf-8")
    return root
