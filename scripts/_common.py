"""What the scripts share: the repository on sys.path, and the --data and --chips options."""
from __future__ import annotations

import argparse
import os
import sys
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
