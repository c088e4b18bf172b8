"""Decoding photos: EXIF orientation applied, every mode to 8-bit RGB, decompression bombs refused."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A photo above this many pixels is refused rather than decoded (about 12,000 x 8,000): the decoded
# array alone would take 300 MB and no camera a user points at faces produces more.
MAX_PIXELS = 100_000_000


class ImageError(ValueError):
    """A file that could not be decoded as a photo; the message names the file and the problem."""


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
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(f"{path}: {w}x{h} pixels is over the limit of {max_pixels:,} (decompression bomb?)")
                if w < 1 or h < 1:
                    raise ImageError(f"{path}: empty image ({w}x{h})")
                img.seek(0)
                img = ImageOps.exif_transpose(img)
                return _to_rgb8(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: refused, too many pixels (decompression bomb): {e}") from None
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
