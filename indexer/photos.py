"""A photo on its way from the folder scan to its stored faces: `Photo`, the one value that carries it, and the
reading that makes it.

`read_photo` reads a file's bytes once; the photo's identity is the sha256 of those bytes, and `decoded` makes
its image from the same bytes, so what is stored is always what was hashed, even if the file is replaced
meanwhile. The pipeline then fills in its size and faces, or why it failed (`Pipeline.photo_faces`,
`indexer/pipeline.py`, in this process or in a worker), and the gallery stores it (`Gallery.write`,
`Gallery.enroll`). `index`, `who`, `verify` and `enroll` all read photos this way.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from models.errors import ImageError
from models.image import read_image

if TYPE_CHECKING:
    from indexer.pipeline import EmbeddedFace

T = TypeVar("T")


@dataclass(frozen=True)
class Photo:
    """One photo file, as far as it has gone: read (`sha256`, `size_bytes`, `data`), decoded (`image`, `width`,
    `height`; `data` let go), searched for faces (`faces`; `image` let go), or stopped on the way (`error`, the
    reason without the path)."""

    path: str
    sha256: str  # of the file's bytes; for a file that cannot be read, `unreadable_key` of its path
    size_bytes: int
    data: bytes | None = field(default=None, repr=False)  # the bytes read, held until decoded
    image: np.ndarray | None = field(default=None, repr=False)  # (h, w, 3) uint8 RGB, held until embedded
    width: int | None = None  # pixels as decoded (EXIF orientation applied); None until decoded or when it failed
    height: int | None = None
    faces: tuple[EmbeddedFace, ...] = ()
    error: str | None = None


def read_photo(path: str | Path) -> Photo:
    """Read a photo's file once and hash its bytes; a file that cannot be read gives a Photo with its `error`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return Photo(str(path), unreadable_key(path), 0, error=f"cannot read ({e.strerror or e})")
    return Photo(str(path), hashlib.sha256(data).hexdigest(), len(data), data=data)


def decoded(photo: Photo) -> Photo:
    """The photo with its image decoded from the bytes that were hashed (and those bytes let go), or with the
    reason it cannot be decoded."""
    if photo.error is not None or photo.data is None:
        return photo
    try:
        image = read_image(photo.path, data=photo.data)
    except ImageError as e:
        return replace(photo, data=None, error=reason_of(e, Path(photo.path)))
    h, w = image.shape[:2]
    return replace(photo, data=None, image=image, width=w, height=h)


def decode_in_parts(photos: list[Photo], max_pixels: int) -> Iterator[list[Photo]]:
    """`decoded` photos in order, in parts whose images together hold at most `max_pixels` pixels (a single larger
    photo makes a part of its own). Each photo is taken out of `photos` as it is decoded (the list is empty at the
    end), so its bytes go when its image comes; and a photo is decoded only when the part before it has been
    handed over, so at most one part and one photo are held decoded at once when the caller lets each part go."""
    photos.reverse()

    def taken() -> Iterator[Photo]:
        while photos:
            yield decoded(photos.pop())

    return in_groups(taken(), max_pixels, lambda ph: ph.width * ph.height if ph.image is not None else 0)


def in_groups(items: Iterable[T], limit: int, weight: Callable[[T], int], count: int | None = None
              ) -> Iterator[list[T]]:
    """`items` in order, in consecutive groups of at most `count` items whose weights add up to at most `limit` (a
    single heavier item makes a group of its own). Items are taken one at a time, as each group is filled."""
    group: list[T] = []
    held = 0
    for item in items:
        w = weight(item)
        if group and (len(group) == count or held + w > limit):
            yield group
            group, held = [], 0
        group.append(item)
        held += w
    if group:
        yield group


def unreadable_key(path: Path) -> str:
    """The identity under which a file whose bytes cannot be read is recorded as failed: the sha256 of its path
    (its content's hash is unknowable), so a rerun updates that one row."""
    return hashlib.sha256(f"unreadable file at {path}".encode("utf-8", "surrogateescape")).hexdigest()


def reason_of(error: Exception, path: Path) -> str:
    """The message of an error about `path`, without the path it starts with."""
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text
