"""LFW View 2, standard 10-fold protocol, for the shipped extractor (or any --weights).

    python scripts/evaluate_lfw.py [--weights models/weights/extractor.keras] [--json out.json]

Builds the LFW chip cache first if it is missing (MTCNN detect + align of the 7,701 photos of pairs.txt).
`facesearch evaluate --out DIR` gives the same numbers with plots.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

from models.training.evaluate import evaluate_lfw  # noqa: E402
from models.extractor import DEFAULT_MODEL  # noqa: E402
from models.training.export import open_extractor  # noqa: E402
from models.training.runs import lfw_chips  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--weights", default=str(DEFAULT_MODEL))
    ap.add_argument("--json", help="write the full result (with per-pair distances) here")
    args = ap.parse_args()
    extractor = open_extractor(args.weights)
    r = evaluate_lfw(extractor, Path(args.data) / "lfw", lfw_chips(Path(args.data), Path(args.chips),
                                                                  extractor.info.chip))
    print(f"model {extractor.version}")
    print(f"LFW View 2 accuracy {100 * r['accuracy_mean']:.2f} % +- {100 * r['accuracy_std']:.2f}")
    print(f"TAR at FAR 1e-3 {100 * r['tar_at_far_1e-3']:.2f} %, at FAR 1e-2 {100 * r['tar_at_far_1e-2']:.2f} %")
    print(f"ROC AUC {r['roc_auc']:.4f}, EER {100 * r['eer']:.2f} %, photos {r['photos']}, no face {r['photos_no_face']}")
    if args.json:
        Path(args.json).write_text(json.dumps(r))


if __name__ == "__main__":
    main()
