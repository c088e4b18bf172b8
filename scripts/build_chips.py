"""Build the chip caches used by training and evaluation (resumable: rerun after a kill).

    python scripts/build_chips.py --data ../shared/data --out ~/.cache/facesearch/chips
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.chips import build_cache  # noqa: E402
from models.datasets import load_folders, load_lfw_pairs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FACESEARCH_DATA", "../shared/data"))
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/facesearch/chips"))
    ap.add_argument("--which", choices=["train", "lfw", "both"], default="both")
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    if args.which in ("train", "both"):
        ds = load_folders(data / "train")
        # a black margin of a quarter side lets MTCNN find the faces of tight crops (Yale B)
        build_cache(list(ds.paths), out / "train", canvas=192)
    if args.which in ("lfw", "both"):
        pairs = load_lfw_pairs(data / "lfw")
        photos = sorted({str(p.a) for p in pairs} | {str(p.b) for p in pairs})
        build_cache([Path(p) for p in photos], out / "lfw-view2")


if __name__ == "__main__":
    main()
