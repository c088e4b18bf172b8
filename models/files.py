"""Writing files so that nothing is ever half written: `write_atomic`, the one writer of every file a killed
process must not leave half written (the index and its sidecar, exports, calibrations, annotated photos, kept
graphs, the shipped extractor's files, the toolkit's caches and reports), with `remove_leftovers` for what a
killed write leaves; and `open_private` for files only their owner may read (a home's files,
`indexer/private.py`).
"""
from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable
from pathlib import Path

PRIVATE_FILE = 0o600


def open_private(path: Path, flags: int) -> int:
    """`os.open(path, flags | O_CREAT)` for a file only its owner may read or write: created 0600, and set to
    0600 when it existed with another mode."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
        os.fchmod(fd, PRIVATE_FILE)
    return fd


def temp_path(path: Path, pid: int) -> Path:
    """The temporary file `write_atomic` writes beside `path` in process `pid`."""
    return path.with_name(f".{path.name}.{pid}.tmp")


def write_atomic(path: str | Path, data: bytes | str, *, private: bool = False,
                 on_step: Callable[[str], None] | None = None) -> None:
    """Write `data` (text as UTF-8) to a temporary file beside `path`, sync it and rename it into place, so that
    `path` holds either its old bytes or all of the new ones, however the process ends. With `private`, the
    file is made 0600 (`open_private`); else it gets the process's default mode.

    `on_step`, when given, is told `temp-partial NAME` once the temporary file holds the first half of the
    bytes (not yet synced), `temp-complete NAME` once it holds all of them, synced but not renamed, and
    `replaced NAME` after the rename; NAME is the name of `path`. Tests stop a write there
    (tests/test_kill_safety.py); a temporary file a killed process left is removed by the next save of the
    index (`remove_leftovers`)."""
    path = Path(path)
    data = data.encode("utf-8") if isinstance(data, str) else data
    step = on_step or (lambda _: None)
    tmp = temp_path(path, os.getpid())
    flags = os.O_WRONLY | os.O_TRUNC
    try:
        fd = open_private(tmp, flags) if private else os.open(tmp, flags | os.O_CREAT, 0o666)
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            step(f"temp-partial {path.name}")
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        step(f"temp-complete {path.name}")
        os.replace(tmp, path)
        step(f"replaced {path.name}")
    finally:
        tmp.unlink(missing_ok=True)


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files of `write_atomic` beside `path` (named as `temp_path` names them) whose process
    is gone (killed mid-save); returns them. Those of a running process are its save in progress and are left
    alone."""
    removed = []
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):-len(".tmp")]
        if not pid.isdigit() or _running(int(pid)):
            continue
        try:
            tmp.unlink()
        except FileNotFoundError:
            continue  # removed meanwhile by another process
        removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier process that had this pid; this one writes only in write_atomic
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True
