"""Build the chip caches used by training and evaluation (resumable: rerun after a kill).

    python scripts/build_chips.py [--data ../shared/data] [--chips ~/.cache/facesearch/chips]

Every photo of train/ and of LFW View 2 is detected (MTCNN) and aligned once into a 112x112 chip; photos
where no face was found are listed with the reason in each cache's no_face.csv.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

from models.chips import build_cache  # noqa: E402
from models.datasets import load_folders  # noqa: E402
from models.runs import TRAIN_CANVAS, lfw_chips  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--which", choices=["train", "lfw", "both"], default="both")
    args = ap.parse_args()
    data, chips = Path(args.data), Path(args.chips)
    if args.which in ("train", "both"):
        build_cache(list(load_folders(data / "train").paths), chips / "train", canvas=TRAIN_CANVAS)
    if args.which in ("lfw", "both"):
        lfw_chips(data, chips)


if __name__ == "__main__":
    main()
