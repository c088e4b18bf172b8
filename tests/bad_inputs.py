"""A corpus of bad and odd inputs, generated into a folder (no binary junk is committed): broken files, every
format and mode the reader must turn into 8-bit RGB, every EXIF orientation, a decompression bomb, and awkward
paths (unicode and spaces, a symlink loop, a folder named like a photo)."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# The upright photo of the orientation cases: the LFW photo (face near its centre, as LFW centres the labelled
# face) in the top-left corner of a grey canvas, so that every rotation or flip moves the face somewhere else.
UPRIGHT_SIZE = (400, 320)  # width, height in pixels

# What Pillow's exif_transpose does for each orientation tag, and the operation that undoes it: a file stored
# as undo(upright) with that tag is seen upright by a person (and by any viewer that honours the tag).
_UNDO = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # shown with ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # shown with ROTATE_90
}

BOMB_SIDE = 20_000  # pixels; 400 million grey pixels in a PNG of a few hundred kilobytes


def upright(face_photo: Path) -> Image.Image:
    canvas = Image.new("RGB", UPRIGHT_SIZE, (128, 128, 128))
    with Image.open(face_photo) as img:
        canvas.paste(img.convert("RGB"), (0, 0))
    return canvas


def write_oriented(face_photo: Path, folder: Path) -> dict[int, Path]:
    """One JPEG per EXIF orientation 1..8, each seen upright (as `upright(face_photo)`) once the tag is applied."""
    folder.mkdir(parents=True, exist_ok=True)
    base = upright(face_photo)
    out = {}
    for tag, undo in _UNDO.items():
        stored = base if undo is None else base.transpose(undo)
        exif = Image.Exif()
        exif[0x0112] = tag  # Orientation
        path = folder / f"orientation-{tag}.jpg"
        stored.save(path, quality=92, exif=exif)
        out[tag] = path
    return out


def write_bomb_png(path: Path, side: int = BOMB_SIDE) -> None:
    """A side x side 8-bit grey PNG, all black, written row by row so that it never sits in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte 0, then the row's pixels
    parts = [packer.compress(row) for _ in range(side)]
    idat = b"".join(parts) + packer.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", idat))
        f.write(chunk(b"IEND", b""))


# name in the corpus -> the words its failure reason must hold
BROKEN = {
    "empty.jpg": "not an image file",
    "truncated.jpg": "truncated",
    "random-bytes.jpg": "not an image file",
    "text.png": "not an image file",
    "bomb.png": "decompression bomb",
}

# formats, modes and paths that must be read as 8-bit RGB of the face photo's size
READABLE = (
    "alpha.png", "sixteen-bit.png", "grey.jpg", "cmyk.jpg", "photo.webp", "animated.gif", "photo.tiff",
    "photo.bmp", "ünïcödé folder/a photo with spaces é.jpg", "dir.jpg/inside.jpg",
)
ONE_PIXEL = "one-pixel.png"


def face_centre(face_photo: Path) -> tuple[float, float]:
    """Where the face is in the upright photo of the orientation cases: x, y in pixels."""
    with Image.open(face_photo) as img:
        return img.width / 2, img.height / 2


def write_corpus(face_photo: Path, root: Path) -> Path:
    """Write every case of BROKEN, READABLE and ONE_PIXEL under `root`, plus a directory symlink to its parent
    (`loop/`), and return `root`."""
    root.mkdir(parents=True, exist_ok=True)
    with Image.open(face_photo) as img:
        rgb = img.convert("RGB")
    jpeg = io.BytesIO()
    rgb.save(jpeg, format="JPEG", quality=90)

    (root / "empty.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (root / "random-bytes.jpg").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "text.png").write_text("this is not a picture\n")
    write_bomb_png(root / "bomb.png")

    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    rgba.save(root / "alpha.png")
    grey16 = (np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(root / "sixteen-bit.png")  # uint16 gives mode I;16
    rgb.convert("L").save(root / "grey.jpg")
    rgb.convert("CMYK").save(root / "cmyk.jpg")
    rgb.save(root / "photo.webp")
    rgb.save(root / "animated.gif", save_all=True, append_images=[rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)],
             duration=100, loop=0)
    rgb.save(root / "photo.tiff")
    rgb.save(root / "photo.bmp")
    Image.new("RGB", (1, 1), (200, 150, 120)).save(root / "one-pixel.png")
    for name, image in (("ünïcödé folder/a photo with spaces é.jpg", rgb),
                        ("dir.jpg/inside.jpg", rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT))):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / name, quality=90)
    (root / "loop").symlink_to("..", target_is_directory=True)
    return root
