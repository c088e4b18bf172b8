"""Decoding photos: EXIF orientation applied, every mode to 8-bit RGB, decompression bombs refused.

Pillow reads every photo's header (size, format, mode, orientation) and decodes every format and mode. A
colour JPEG, the common case, is decoded by OpenCV instead: the same libjpeg-turbo decoder gives the same
pixels (compared on LFW, training and composed 12 MP photos: not one value differs), but Pillow then copies
the image three times on its way to a NumPy array (orientation, mode conversion, array export). On a 12 MP
photo that took 225 ms instead of 75 (`bench/index_vs_face_recognition.py` shows what it buys).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import ImageError

# A photo above this many pixels is refused rather than decoded (about 12,000 x 8,000): the decoded
# array alone would take 300 MB and no camera a user points at faces produces more.
MAX_PIXELS = 100_000_000


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, data: bytes | None = None) -> np.ndarray:
    """Decode `path` to an (h, w, 3) uint8 RGB array with its EXIF orientation applied.

    Grey, palette, RGBA, CMYK and 16-bit images all come back as 8-bit RGB; of an animated GIF the first
    frame. Raises ImageError naming the file for anything that is not a readable photo. With `data`, those
    bytes are decoded instead of reading the file (a machine that cannot see the file was sent its bytes);
    `path` still names it in errors.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89.5 MP and refuses from twice that; the limit is this project's, checked
            # below from the header, so its warning is silenced and its refusal reworded. Its other warnings
            # are about damaged metadata (a TIFF tag longer than the file, say) in a photo that still decodes:
            # a photo that does not decode is reported with its reason, so they are silenced too.
            warnings.simplefilter("ignore")
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(f"{path}: {w}x{h} pixels is over the limit of {max_pixels:,} (decompression bomb?)")
                if w < 1 or h < 1:
                    raise ImageError(f"{path}: empty image ({w}x{h})")
                if img.format == "JPEG" and img.mode == "RGB":
                    orientation = img.getexif().get(_ORIENTATION, 1)
                    return _decode_colour_jpeg(path.read_bytes() if data is None else data, orientation, path)
                img.seek(0)
                img = ImageOps.exif_transpose(img)
                return _to_rgb8(img)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: over the limit of {max_pixels:,} pixels (decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file, or a format that cannot be read") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not a photo") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: damaged or truncated image ({e})") from None


_ORIENTATION = 0x0112  # the EXIF tag


def _decode_colour_jpeg(data: bytes, orientation: int, path: Path) -> np.ndarray:
    """An RGB JPEG's bytes to an (h, w, 3) uint8 RGB array, turned upright as EXIF `orientation` (1..8) says,
    the way Pillow's `exif_transpose` turns it."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise OSError("its JPEG data is incomplete or damaged")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    upright = _UPRIGHT.get(orientation)
    return np.ascontiguousarray(upright(rgb) if upright is not None else rgb)


# EXIF orientation -> what turns the stored pixels upright (rows, columns, channels), as Pillow's exif_transpose
_UPRIGHT = {
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # turned 180 degrees
    4: lambda a: a[::-1],  # flipped
    5: lambda a: a.transpose(1, 0, 2),  # transposed
    6: lambda a: np.rot90(a, -1),  # turned a quarter clockwise to be upright
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # transversed
    8: lambda a: np.rot90(a, 1),  # turned a quarter anticlockwise to be upright
}


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        grey = np.clip(arr, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white, as a viewer shows them on a page.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
