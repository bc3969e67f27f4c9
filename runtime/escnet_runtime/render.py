"""Label maps as images: a fixed palette, the palette PNG, an overlay with a legend (Pillow only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

OVERLAY_ALPHA = 0.5  # weight of the class colour over the image
LEGEND_MAX_ROWS = 40  # classes listed in the legend (the most frequent first)
LEGEND_MAX_CHARS = 40  # longer class names are shortened in the legend
BLEND_TILE_PIXELS = 1 << 20  # pixels blended per tile (16 MiB of float32 working memory)


def _legend_text(name: str, share: float) -> str:
    shown = name if len(name) <= LEGEND_MAX_CHARS else name[: LEGEND_MAX_CHARS - 3] + "..."
    return f"{shown} {100 * share:.1f}%"


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours: the PASCAL VOC bit-interleaving scheme (0 = black is skipped)."""
    colours = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, code = i + 1, [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                code[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        colours[i] = code
    return colours


def label_image(labels: np.ndarray, num_classes: int) -> Image.Image:
    """labels (H, W) -> a palette ("P") PNG-able image up to 256 classes, else 16-bit grayscale ids."""
    if num_classes <= 256:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        flat = np.zeros((256, 3), dtype=np.uint8)
        flat[:num_classes] = palette(num_classes)
        img.putpalette(flat.ravel().tolist())
        return img
    return Image.fromarray(labels.astype(np.uint16))  # mode I;16: class ids beyond a palette's reach


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def blend_into(out: np.ndarray, image: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> None:
    """out (H, W, 3) uint8 = image blended with colours[labels], OVERLAY_ALPHA of colour.

    In tiles of rows (float32 per tile, the same arithmetic for every pixel as one whole-image
    blend): an 81-megapixel image never holds a float32 copy of itself.
    """
    h, w = labels.shape
    rows = max(1, BLEND_TILE_PIXELS // max(1, w))
    a = np.float32(OVERLAY_ALPHA)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        tile = image[r0:r1].astype(np.float32) * (np.float32(1) - a) + colours[labels[r0:r1]].astype(np.float32) * a
        out[r0:r1] = np.clip(np.rint(tile), 0, 255).astype(np.uint8)


def _legend(
    class_names: Sequence[str], counts: np.ndarray, total: int, h: int
) -> tuple[list[int], int, dict[int, str], ImageFont.ImageFont | ImageFont.FreeTypeFont, int]:
    """(classes listed, row height, their texts, font, panel width) of the legend."""
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0][:LEGEND_MAX_ROWS]
    row = max(12, min(32, h // max(1, len(present) + 1)))
    font = _font(max(8, row - 4))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = {i: _legend_text(class_names[i], counts[i] / total) for i in present}
    widths = [measure.textlength(texts[i], font=font) for i in present]
    return present, row, texts, font, int(row + 8 + max(widths, default=0) + 8)


def overlay_image(image: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> Image.Image:
    """image (H, W, 3) uint8 blended with the class colours, plus a legend panel on the right.

    The blend is written straight into the canvas (uint8), tile by tile; only the legend panel
    is drawn with Pillow.
    """
    colours = palette(len(class_names))
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    h, w = labels.shape
    present, row, texts, font, panel_w = _legend(class_names, counts, labels.size, h)
    height = max(h, row * (len(present) + 1))
    canvas = np.full((height, w + panel_w, 3), 255, dtype=np.uint8)  # (H', W + panel, 3)
    blend_into(canvas[:h, :w], image, labels, colours)
    panel = Image.new("RGB", (panel_w, height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for k, i in enumerate(present):
        y = 4 + k * row
        draw.rectangle([4, y, row, y + row - 4], fill=tuple(int(v) for v in colours[i]), outline=(0, 0, 0))
        draw.text((row + 8, y), texts[i], fill=(0, 0, 0), font=font)
    canvas[:, w:] = np.asarray(panel)
    return Image.fromarray(canvas, mode="RGB")
