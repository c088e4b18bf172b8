"""Finding photos in folders and naming them by content: the sha256 of a file's bytes is its identity."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# Suffixes read as photos (compared lower-cased); of a GIF only the first frame is used.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Scan:
    """What a scan found: photos to read, in a stable order, and how many other files it passed over."""

    photos: tuple[Path, ...]
    skipped: int  # files in the folders whose suffix is not a photo's
    missing: tuple[Path, ...]  # paths given that do not exist
    skipped_files: tuple[Path, ...] = ()  # those files, by path


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES


def scan(paths: list[Path] | tuple[Path, ...]) -> Scan:
    """Photos under `paths`: folders are walked recursively (hidden files and folders skipped), files given
    by name are taken as photos whatever their suffix. Each photo appears once, as an absolute path."""
    photos: list[Path] = []
    seen: set[Path] = set()
    skipped: list[Path] = []
    missing: list[Path] = []

    def take(p: Path) -> None:
        p = p.absolute()
        if p not in seen:
            seen.add(p)
            photos.append(p)

    for given in paths:
        given = Path(given).expanduser()
        if given.is_dir():
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    p = Path(root) / name
                    if is_photo(p):
                        take(p)
                    else:
                        skipped.append(p.absolute())
        elif given.exists():
            take(given)
        else:
            missing.append(given)
    return Scan(tuple(photos), len(skipped), tuple(missing), tuple(skipped))


def hash_file(path: Path) -> tuple[str, int]:
    """The sha256 hex digest of the file's bytes and its size in bytes."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
