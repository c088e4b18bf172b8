"""Finding photos in folders and naming them by content: the sha256 of a file's bytes is its identity."""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

# Suffixes read as photos (compared lower-cased); of a GIF only the first frame is used.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Scan:
    """What a scan found: photos to read, in a stable order, and how many other files it passed over."""

    photos: tuple[Path, ...]
    missing: tuple[Path, ...]  # paths given that do not exist
    skipped_files: tuple[Path, ...] = ()  # files in the folders whose suffix is not a photo's
    unreadable: tuple[tuple[Path, str], ...] = ()  # (path, why): folders that could not be listed, and things
    # that are not regular files (FIFOs, devices, sockets), which reading would block on or never finish

    @property
    def skipped(self) -> int:
        """How many files the scan passed over as not photos."""
        return len(self.skipped_files)


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES


def scan(paths: list[Path] | tuple[Path, ...]) -> Scan:
    """Photos under `paths`: folders are walked recursively (hidden files and folders skipped), files given
    by name are taken as photos whatever their suffix. Each photo appears once, as an absolute path.

    Symbolic links to folders are followed, and each folder is walked once however many links lead to it,
    so a link loop ends. A folder that cannot be listed, and anything that is not a regular file (a FIFO, a
    device, a socket: reading one could block for ever), is reported in `unreadable` and the scan goes on."""
    photos: list[Path] = []
    seen: set[Path] = set()
    skipped: list[Path] = []
    missing: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    walked: set[tuple[int, int]] = set()  # (device, inode) of every folder walked

    def take(p: Path) -> None:
        p = p.absolute()
        if p in seen:
            return
        why = _not_a_regular_file(p)
        if why:
            unreadable.append((p, why))
            return
        seen.add(p)
        photos.append(p)

    def first_visit(folder: str) -> bool:
        try:
            st = os.stat(folder)
        except OSError:
            return True  # os.walk reports it through `refused`
        key = (st.st_dev, st.st_ino)
        if key in walked:
            return False
        walked.add(key)
        return True

    def refused(error: OSError) -> None:
        unreadable.append((Path(error.filename).absolute(), f"folder not read ({error.strerror or error})"))

    for given in paths:
        given = Path(given).expanduser()
        if given.is_dir():
            if not first_visit(str(given)):
                continue
            for root, dirs, files in os.walk(given, onerror=refused, followlinks=True):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and first_visit(os.path.join(root, d)))
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
    return Scan(tuple(photos), tuple(missing), tuple(skipped), tuple(unreadable))


def _not_a_regular_file(path: Path) -> str:
    """Why `path` is not read as a photo ("" when it is a regular file, or gone: reading it will say so)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode):
        return ""
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"{kind}, not a photo file: skipped"


def hash_file(path: Path) -> tuple[str, int]:
    """The sha256 hex digest of the file's bytes and its size in bytes."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
