"""Build the chip caches used by training and evaluation (resumable: rerun after a kill).

    python scripts/build_chips.py [--data ../shared/data] [--chips ~/.cache/facesearch/chips] [--geometry dlib150]

Every photo of train/ and of LFW View 2 is detected (MTCNN) and aligned once into a chip of one geometry
(`models/align.py`: `dlib150`, the shipped extractor's 150 px chip, or `arcface112`, the baseline's); photos
where no face was found are listed with the reason in each cache's no_face.csv.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

from models.align import GEOMETRIES  # noqa: E402
from models.training.chips import build_cache  # noqa: E402
from models.training.datasets import load_folders  # noqa: E402
from models.training.runs import TRAIN_CANVAS, lfw_chips  # noqa: E402
from models.training.train import cache_name  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--which", choices=["train", "lfw", "both"], default="both")
    ap.add_argument("--geometry", choices=sorted(GEOMETRIES), default="dlib150")
    args = ap.parse_args()
    data, chips, geometry = Path(args.data), Path(args.chips), GEOMETRIES[args.geometry]
    if args.which in ("train", "both"):
        build_cache(list(load_folders(data / "train").paths), chips / cache_name("train", geometry),
                    canvas=TRAIN_CANVAS, geometry=geometry)
    if args.which in ("lfw", "both"):
        lfw_chips(data, chips, geometry)


if __name__ == "__main__":
    main()
