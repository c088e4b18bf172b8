"""What the scripts share: the repository on sys.path, the --data and --chips options, a timestamped log."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser showing `doc`, with --data (the face data) and --chips (the chip caches)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FACESEARCH_DATA", str(REPO.parent / "shared" / "data")),
                    help="the face data folder, holding train/ and lfw/ (env FACESEARCH_DATA)")
    ap.add_argument("--chips", default=os.path.expanduser("~/.cache/facesearch/chips"),
                    help="where the aligned-chip caches live")
    return ap


def timestamped_log(file: Path | None = None):
    """A `log(msg)` that prints each message with the local time, and appends it to `file` too when given
    (flushed line by line, so a killed run's log is complete up to its last message)."""
    out = open(file, "a") if file else None

    def log(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    return log
