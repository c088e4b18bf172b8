"""LFW View 2, standard 10-fold protocol, for the shipped extractor (or any --weights).

    python scripts/evaluate_lfw.py [--weights models/weights/extractor.keras] [--json out.json]

Builds the LFW chip cache first if it is missing (MTCNN detect + align of the 7,701 photos of pairs.txt).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.chips import build_cache, load_cache  # noqa: E402
from models.datasets import load_lfw_pairs  # noqa: E402
from models.evaluate import evaluate_lfw  # noqa: E402
from models.extractor import DEFAULT_MODEL, Extractor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FACESEARCH_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--chips", default=os.path.expanduser("~/.cache/facesearch/chips"))
    ap.add_argument("--weights", default=str(DEFAULT_MODEL))
    ap.add_argument("--json", help="write the full result (with per-pair distances) here")
    args = ap.parse_args()
    lfw = Path(args.data) / "lfw"
    cache = Path(args.chips) / "lfw-view2"
    pairs = load_lfw_pairs(lfw)
    photos = sorted({str(p.a) for p in pairs} | {str(p.b) for p in pairs})
    if not list(cache.glob("shard-*.npz")) or len(load_cache(cache).paths) != len(photos):
        build_cache([Path(p) for p in photos], cache)
    extractor = Extractor(args.weights)
    r = evaluate_lfw(extractor, lfw, load_cache(cache))
    print(f"model {extractor.version}")
    print(f"LFW View 2 accuracy {100 * r['accuracy_mean']:.2f} % +- {100 * r['accuracy_std']:.2f}")
    print(f"TAR at FAR 1e-3 {100 * r['tar_at_far_1e-3']:.2f} %, at FAR 1e-2 {100 * r['tar_at_far_1e-2']:.2f} %")
    print(f"ROC AUC {r['roc_auc']:.4f}, EER {100 * r['eer']:.2f} %, photos {r['photos']}, no face {r['photos_no_face']}")
    if args.json:
        Path(args.json).write_text(json.dumps(r))


if __name__ == "__main__":
    main()
