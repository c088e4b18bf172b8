"""A home is private: its folder mode 0700, its files 0600, whatever the process's umask.

A gallery is biometric data about people who never agreed to be in it, so on a shared machine no other user
may read it. The home folder is made 0700 when facesearch creates it, and every file facesearch writes there
(the SQLite database and its write-ahead log, the FAISS index and its sidecar, the lock file, a calibration)
is created 0600; exports are written 0600 too. A home made before, or loosened by hand, is found by `loose`
(the commands warn once) and tightened by `tighten` (`facesearch check --repair`).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from models.files import PRIVATE_FILE, open_private

PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """`path` as a folder: created 0700 (with its missing parents, which get the default mode) when it does
    not exist; left as it is when it does (see `loose`)."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, PRIVATE_DIR)
    return path


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 if it does not exist (an SQLite database before its first connection, so
    that the file and the journals SQLite gives its mode are private from the start)."""
    if not Path(path).exists():
        os.close(open_private(Path(path), os.O_WRONLY))


def loose(home: Path) -> list[tuple[Path, int]]:
    """The home folder and the files directly in it that users other than the owner may read, write or enter,
    with their modes."""
    home = Path(home)
    out = []
    try:
        entries = [home] + sorted(p for p in home.iterdir() if p.is_file() and not p.is_symlink())
    except OSError:
        return out
    for p in entries:
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            out.append((p, mode))
    return out


def tighten(home: Path) -> list[tuple[Path, int]]:
    """Make the home folder 0700 and its files 0600; the ones changed, with their modes before."""
    changed = loose(home)
    for p, _ in changed:
        os.chmod(p, PRIVATE_DIR if p.is_dir() else PRIVATE_FILE)
    return changed
