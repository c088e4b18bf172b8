"""One writer per home: a lock file in the home folder, held (with `flock`) for the whole of a run that writes.

The operating system releases the lock when its process ends, however it ends, so a killed run never leaves
a stale lock behind. The file holds the pid of the process that last took it, for the message of the next one.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.private import private_dir
from models.files import open_private

LOCK_FILE = "facesearch.lock"


@contextmanager
def hold_home(home: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the write lock of `home` (created if missing) while the block runs; yields the lock file's path.

    When another process holds it, `on_wait` is told once who holds it, and this one waits until it is free.
    """
    home = private_dir(Path(home))
    path = home / LOCK_FILE
    fd = open_private(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"another facesearch is writing to {home} (pid {_holder(fd)}); "
                        "waiting for it to finish...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays, as removing it would race with the next taker


def _holder(fd: int) -> str:
    """The pid written in the lock file, or 'unknown' while the holder has not written it yet."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"
