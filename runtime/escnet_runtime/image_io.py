"""Image files -> (H, W, 3) uint8 RGB arrays, with one-line errors for everything else.

Decisions: EXIF orientation is applied; grayscale, palette, CMYK and 1-bit images are converted
to RGB; alpha is dropped (as CLIP's own transforms do); 16-bit images are scaled to 8 bits
(x / 257, rounded), not clipped as Pillow's convert would. Images over ``max_pixels`` are
refused before they are decoded (decompression bombs, memory).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from escnet_runtime.errors import InputError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 9459 x 9459)
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def pixels(n: int) -> str:
    """A pixel count for a message: "89 Mpx", "0.3 Mpx" or "1000 pixels"."""
    return f"{n / 1e6:.0f} Mpx" if n >= 10_000_000 else f"{n / 1e6:.1f} Mpx" if n >= 100_000 else f"{n} pixels"


def _to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """A decoded Pillow image -> (H, W, 3) uint8."""
    if img.mode in _SIXTEEN_BIT:
        wide = np.asarray(img).astype(np.float64)  # (H, W) 16-bit samples ("I" holds them as int32)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise InputError(f"{path}: 32-bit integer image with values outside 0..65535 is not supported")
        gray = np.round(wide / 257.0).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "F":
        raise InputError(f"{path}: floating-point images (mode F) are not supported; save it as 8- or 16-bit")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as e:
            raise InputError(f"{path}: cannot convert a {img.mode} image to RGB ({e})") from None
    return np.asarray(img, dtype=np.uint8).copy()


def check_image_path(path: Path) -> None:
    """A path that can be an image file: exists, is not a folder, is a file; else one line."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")


def pil_to_array(img: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An in-memory Pillow image -> (H, W, 3) uint8 RGB, decided as for files (EXIF, modes, 16-bit)."""
    w, h = img.size
    if w < 1 or h < 1:
        raise InputError(f"PIL image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise InputError(f"PIL image is {w}x{h} ({pixels(w * h)}), over the limit of {pixels(max_pixels)}")
    name = Path(getattr(img, "filename", "") or "PIL image")
    try:
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_rgb(img, name)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, AttributeError) as e:
        raise InputError(f"{name}: cannot read this PIL image ({type(e).__name__}: {e})") from None


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, check_path: bool = True) -> np.ndarray:
    """path -> (H, W, 3) uint8 RGB, or InputError (one line) for anything that is not a usable image.

    The file is opened once; its size is checked from the header before decoding. ``check_path``:
    first say plainly when the path is missing, a folder or not a regular file (off when the
    caller checked it already).
    """
    path = Path(path)
    if check_path:
        check_image_path(path)
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Our own limit replaces Pillow's for this call; the size is checked before decoding.
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w < 1 or h < 1:
                    raise InputError(f"{path}: image has no pixels ({w}x{h})")
                if w * h > max_pixels:
                    raise InputError(
                        f"{path}: image is {w}x{h} ({pixels(w * h)}), over the limit of "
                        f"{pixels(max_pixels)} (raise it with --max-pixels if memory allows)"
                    )
                img.load()
                img = ImageOps.exif_transpose(img) or img
                return _to_rgb(img, path)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{path}: damaged or truncated image ({e})") from None
    except MemoryError:
        raise InputError(f"{path}: not enough memory to decode this image") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
