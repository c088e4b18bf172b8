"""Train the three objectives on the same data with the same budget and compare them (resumable).

    python scripts/compare_losses.py --steps 400 --out runs/compare

Each loss alone (no softmax term), the same 60/20/20 identity split of `shared/data/train`, the same
batches (32 identities x 4 photos), steps, seed and learning-rate schedule. For each: training wall time,
accuracy on the held-out test identities and on LFW View 2 (10 folds), TAR at FAR 1e-3 and 1e-2, AUC.
Writes RUNS/compare.md (the table docs/from-scratch-extractor.md shows) and RUNS/compare.json.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

from models.training.card import history, steps_seconds  # noqa: E402
from models.training.runs import run_training  # noqa: E402
from models.training.train import LOSSES, TrainConfig  # noqa: E402



def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default="runs/compare")
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for loss in LOSSES:
        run = out / loss
        cfg = TrainConfig(chips=str(Path(args.chips) / "train"), run=str(run), loss=loss, steps=args.steps,
                          softmax_weight=0.0, split=(0.6, 0.2, 0.2))
        run_training(cfg, Path(args.data), Path(args.chips), log=lambda m: print(f"[{loss}] {m}", flush=True))
        if not (run / "lfw.json").exists():
            print(f"[{loss}] not finished; rerun to resume")
            return
        lfw = json.loads((run / "lfw.json").read_text())
        test = json.loads((run / "test.json").read_text())
        hist = history(run)
        rows[loss] = {
            "train_minutes": round(steps_seconds(hist) / 60, 1),
            "pipeline_images_per_s": json.loads((run / "pipeline.json").read_text())["pipeline_images_per_s"],
            "step_images_per_s": round(sum(float(h["images_per_s"]) for h in hist) / max(len(hist), 1), 1),
            "lfw_accuracy": lfw["accuracy_mean"], "lfw_std": lfw["accuracy_std"],
            "lfw_tar_1e-3": lfw["tar_at_far_1e-3"], "lfw_tar_1e-2": lfw["tar_at_far_1e-2"],
            "lfw_auc": lfw["roc_auc"], "test_accuracy": test["accuracy_mean"], "test_auc": test["roc_auc"],
        }
    (out / "compare.json").write_text(json.dumps(rows, indent=2))
    lines = [
        f"Three objectives, {args.steps} steps of 32 x 4 photos each, same split and seed, no softmax term; "
        f"measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}) "
        f"by `python scripts/compare_losses.py --steps {args.steps}`.",
        "",
        "| objective | training time | training images/s (input pipeline alone) | LFW accuracy | LFW TAR @ FAR 1e-3 "
        "| LFW TAR @ FAR 1e-2 | LFW AUC | test-split accuracy | test-split AUC |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for loss, r in rows.items():
        lines.append(f"| {loss} | {r['train_minutes']} min | {r['step_images_per_s']:.0f} ({r['pipeline_images_per_s']:.0f}) | "
                     f"{100 * r['lfw_accuracy']:.2f} % ± {100 * r['lfw_std']:.2f} | "
                     f"{100 * r['lfw_tar_1e-3']:.2f} % | {100 * r['lfw_tar_1e-2']:.2f} % | {r['lfw_auc']:.4f} | "
                     f"{100 * r['test_accuracy']:.2f} % | {r['test_auc']:.4f} |")
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
