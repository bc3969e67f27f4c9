"""Label maps as images: a fixed palette, the palette PNG, an overlay with a legend (Pillow only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

OVERLAY_ALPHA = 0.5  # weight of the class colour over the image
LEGEND_MAX_ROWS = 40  # classes listed in the legend (the most frequent first)
LEGEND_MAX_CHARS = 40  # longer class names are shortened in the legend


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


def overlay_image(image: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> Image.Image:
    """image (H, W, 3) uint8 blended with the class colours, plus a legend panel on the right."""
    colours = palette(len(class_names))
    blended = image.astype(np.float32) * (1 - OVERLAY_ALPHA) + colours[labels].astype(np.float32) * OVERLAY_ALPHA
    base = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), mode="RGB")
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0][:LEGEND_MAX_ROWS]
    h, w = labels.shape
    row = max(12, min(32, h // max(1, len(present) + 1)))
    font = _font(max(8, row - 4))
    measure = ImageDraw.Draw(base)
    texts = {i: _legend_text(class_names[i], counts[i] / labels.size) for i in present}
    widths = [measure.textlength(texts[i], font=font) for i in present]
    panel_w = int(row + 8 + max(widths, default=0) + 8)
    canvas = Image.new("RGB", (w + panel_w, max(h, row * (len(present) + 1))), (255, 255, 255))
    canvas.paste(base, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, i in enumerate(present):
        y = 4 + k * row
        draw.rectangle([w + 4, y, w + row, y + row - 4], fill=tuple(int(v) for v in colours[i]), outline=(0, 0, 0))
        draw.text((w + row + 8, y), texts[i], fill=(0, 0, 0), font=font)
    return canvas
