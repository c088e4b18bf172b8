"""What each part of the extractor's recipe buys: short runs that each change one part (resumable).

    python scripts/ablate_extractor.py --steps 600 --only shipped,no-augment,wide,no-softmax --out runs/ablate

Every variant starts from scratch with the same identity split (90 % training, 10 % validation), seed, batches
of 32 identities x 4 photos, steps and learning-rate schedule. The base is the shipped model's objective,
augmentation and network, trained far shorter: triplet loss + cosine-margin softmax (weight 1), augmentation
(flip, crop, colour and grey jitter), the 24/48/96/192 backbone (1/2/2/1 blocks), no teacher. Variants:

- `shipped`: that recipe;
- `no-augment`: chips as cached, no flip, crop, colour or grey jitter;
- `no-softmax`: triplet loss alone;
- `wide`: the 16/64/128/256 backbone (1/2/3/1 blocks), more channels and one more block;
- `relation`: + relational distillation from dlib's network (its pairwise cosines inside each batch, weight 20,
  0.7 of its mean removed); needs the teacher cache (`python scripts/build_teacher.py`);
- `relation-centred`: the same with the teacher's mean removed in full (strangers at cosine 0, where the
  softmax and triplet terms put them);
- `position`: distillation of the teacher's embeddings themselves (1 - cos, weight 4) instead of their
  relations (the first distillation run's term; see docs/from-scratch-extractor.md on why that run was not shipped).

Each is judged on the validation identities (TAR at FAR 1e-3 and 1e-2 of `calibration.json`), which is what
choices are made on, and LFW View 2 is reported beside it. Runs embed without flip averaging, so the numbers
compare recipes, not the shipped engine; what flip averaging buys at run time is measured by
`bench/lfw_vs_face_recognition.py` (the same chips embedded with and without it). Training time is the sum
of the logged steps (it survives a kill and a resume). Writes OUT/ablate.md and OUT/ablate.json. Whether a
variant's difference is more than chance: `python scripts/compare_extractors.py OUT/VARIANT OUT/shipped`
(a bootstrap over the validation identities).

Before commit cda1685 the base was the wide backbone with relational distillation (variants `recipe` and
`no-distill`, the distillation table of docs/from-scratch-extractor.md); its `no-distill` is this version's `wide`.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

from models.training.card import history, steps_seconds  # noqa: E402
from models.training.runs import run_training  # noqa: E402
from models.training.train import TrainConfig  # noqa: E402

RECIPE = {"softmax_weight": 1.0, "distill_weight": 0.0, "widths": (24, 48, 96, 192), "depths": (1, 2, 2, 1),
          "flip": False}
TEACHER = {"distill_weight": 20.0, "distill_mode": "relation"}
VARIANTS = {
    "shipped": {},
    "no-augment": {"augment": False},
    "no-softmax": {"softmax_weight": 0.0},
    "wide": {"widths": (16, 64, 128, 256), "depths": (1, 2, 3, 1)},
    "relation": TEACHER,
    "relation-centred": {**TEACHER, "teacher_centre": 1.0},
    "position": {"distill_mode": "position", "distill_weight": 4.0},
}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default="runs/ablate")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--only", help="comma-separated variants to run (default: all)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only.split(",") if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    for name in names:
        run = out / name
        cfg = TrainConfig(chips=str(Path(args.chips) / "train"), run=str(run), steps=args.steps,
                          **{**RECIPE, **VARIANTS[name]})
        run_training(cfg, Path(args.data), Path(args.chips), log=lambda m, n=name: print(f"[{n}] {m}", flush=True))
        if not (run / "lfw.json").exists():
            print(f"[{name}] not finished; rerun to resume")
            return
    rows = {}
    for name in VARIANTS:  # every finished variant, also those of earlier invocations
        run = out / name
        if not (run / "lfw.json").exists():
            continue
        calib = json.loads((run / "calibration.json").read_text())
        lfw = json.loads((run / "lfw.json").read_text())
        hist = history(run)
        rows[name] = {
            "steps": json.loads((run / "config.json").read_text())["steps"],
            "train_minutes": round(steps_seconds(hist) / 60, 1),
            # the median of the logged stretches: other work on the machine slows only some of them
            "train_images_per_s": round(statistics.median(float(r["images_per_s"]) for r in hist), 1),
            "val_tar_1e-3": calib["tar_at_far_1e-3"], "val_tar_1e-2": calib["tar_at_far_1e-2"],
            "lfw_accuracy": lfw["accuracy_mean"], "lfw_std": lfw["accuracy_std"],
            "lfw_tar_1e-3": lfw["tar_at_far_1e-3"], "lfw_tar_1e-2": lfw["tar_at_far_1e-2"],
        }
    (out / "ablate.json").write_text(json.dumps(rows, indent=2))
    lines = [
        (f"Batches of 32 x 4 photos, same split and seed, embeddings without flip averaging; table written "
         f"{time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}) by "
         f"`python scripts/ablate_extractor.py`."),
        "",
        ("| variant | steps | training time | training images/s (median) | validation TAR @ FAR 1e-3 "
         "| validation TAR @ FAR 1e-2 | LFW accuracy | LFW TAR @ FAR 1e-3 | LFW TAR @ FAR 1e-2 |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['steps']} | {r['train_minutes']} min | {r['train_images_per_s']} | "
                     f"{100 * r['val_tar_1e-3']:.2f} % | "
                     f"{100 * r['val_tar_1e-2']:.2f} % | {100 * r['lfw_accuracy']:.2f} % ± {100 * r['lfw_std']:.2f} | "
                     f"{100 * r['lfw_tar_1e-3']:.2f} % | {100 * r['lfw_tar_1e-2']:.2f} % |")
    (out / "ablate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
