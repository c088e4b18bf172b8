"""Rewrite the shipped extractor's engine graph with the current 8-bit scheme, and measure it again.

    python scripts/requantize.py                  # models/weights, measured in runs/requantize

Needed when `models/training/export.py`'s `quantize` changes: the float weights (`extractor.keras`) stay as trained,
the graph `extractor.onnx` is written again from them on 512 chips of the training identities, the
thresholds are calibrated again on the validation identities and LFW View 2 is measured again, all through
the new graph; then `extractor.json` (with a new version, so galleries are moved by `facesearch reembed`),
the LFW figures and the model card's measured sections are updated. Each stage is skipped when its output
exists, so a killed run, rerun, goes on. Does nothing when the graph is already of the current scheme.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, parser, timestamped_log  # noqa: E402

from models.training.runs import requantize  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--weights", default=str(REPO / "models" / "weights"), help="the shipped model's folder")
    ap.add_argument("--work", default=str(REPO / "runs" / "requantize"),
                    help="folder for the new graph's measurements (kept: a rerun resumes from it)")
    args = ap.parse_args()
    requantize(Path(args.weights), Path(args.data), Path(args.chips), Path(args.work), log=timestamped_log())


if __name__ == "__main__":
    main()
