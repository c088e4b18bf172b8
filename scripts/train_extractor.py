"""Train, calibrate, evaluate and ship the facesearch extractor: one command, resumable after a kill.

    python scripts/build_chips.py                      # once: chip caches of train/ and LFW View 2
    python scripts/train_extractor.py --run runs/triplet-v1 --steps 2000 --ship

Stages, each skipped when its output exists: train (checkpoints every 250 steps in RUN/ckpt), calibrate
(thresholds on the held-out 10 % of training identities -> RUN/calibration.json), LFW View 2 10-fold
(-> RUN/lfw.json; LFW is touched only here, never for training or for choosing anything), and with --ship,
copy into models/weights/ with extractor.json and the model card.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from models.train import TrainConfig, identity_of, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# The threshold `verify` and `who` use: calibrated on held-out identities for this false-accept rate.
SHIPPED_FAR = 1e-2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FACESEARCH_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--chips", default=os.path.expanduser("~/.cache/facesearch/chips"))
    ap.add_argument("--run", required=True, help="run folder (checkpoints, history, outputs)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--max-hours", type=float, default=0.0, help="stop and checkpoint after this long; rerun to resume")
    ap.add_argument("--ship", action="store_true", help="copy the result into models/weights with its model card")
    args = ap.parse_args()
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    log_file = open(run / "train.log", "a")

    def log(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    cfg = TrainConfig(chips=str(Path(args.chips) / "train"), run=str(run), steps=args.steps, max_hours=args.max_hours)
    weights = run / "extractor.keras"
    if not weights.exists():
        t0 = time.time()
        out = train(cfg, log=log)
        _add_time(run, time.time() - t0)
        if not weights.exists():
            log(f"not finished ({out}); rerun this command to resume")
            return
    info = run / "extractor.json"
    if not info.exists():
        info.write_text(json.dumps({"version": _version(weights), "dim": cfg.dim, "threshold": 1.0,
                                    "threshold_far": SHIPPED_FAR, "flip": True}, indent=2))
    from models.chips import load_cache
    from models.extractor import Extractor

    extractor = Extractor(weights)
    calib_file = run / "calibration.json"
    if not calib_file.exists():
        from models.evaluate import calibrate, embed_chipset

        cache = load_cache(cfg.chips)
        val_ids = {line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:]
                   if line.endswith(",val")}
        names = np.array([identity_of(p) for p in cache.paths])
        keep = np.isin(names, list(val_ids)) & cache.found
        from models.chips import ChipSet

        val = ChipSet(cache.chips[keep], cache.found[keep], cache.scores[keep],
                      tuple(p for p, k in zip(cache.paths, keep) if k))
        emb = embed_chipset(extractor, val)
        calib = calibrate(emb, names[keep])
        calib["photos"] = int(keep.sum())
        calib["identities"] = len(val_ids)
        calib_file.write_text(json.dumps(calib, indent=2))
        log(f"calibration: {calib}")
    calib = json.loads(calib_file.read_text())
    meta = json.loads(info.read_text())
    meta.update(threshold=calib[f"threshold_far_{SHIPPED_FAR:.0e}".replace("e-0", "e-")], threshold_far=SHIPPED_FAR,
                threshold_far_1e_3=calib["threshold_far_1e-3"])
    info.write_text(json.dumps(meta, indent=2))
    extractor = Extractor(weights)

    lfw_file = run / "lfw.json"
    if not lfw_file.exists():
        from models.evaluate import evaluate_lfw

        t0 = time.time()
        chips = load_cache(Path(args.chips) / "lfw-view2")
        result = evaluate_lfw(extractor, Path(args.data) / "lfw", chips)
        result["seconds"] = round(time.time() - t0, 1)
        lfw_file.write_text(json.dumps(result))
        log(f"LFW View 2: {result['accuracy_mean']:.4f} +- {result['accuracy_std']:.4f}, "
            f"TAR@FAR1e-3 {result['tar_at_far_1e-3']:.4f}, AUC {result['roc_auc']:.4f}")
    if args.ship:
        ship(run, log)


def _add_time(run: Path, seconds: float) -> None:
    f = run / "wall_seconds.txt"
    total = float(f.read_text()) if f.exists() else 0.0
    f.write_text(str(round(total + seconds, 1)))


def _version(weights: Path) -> str:
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:10]
    return f"fs-triplet-{time.strftime('%Y%m%d')}-{digest}"


def ship(run: Path, log) -> None:
    """Copy the run's extractor into models/weights and write its model card."""
    from models.card import write_card

    dest = REPO / "models" / "weights"
    dest.mkdir(exist_ok=True)
    lfw = json.loads((run / "lfw.json").read_text())
    meta = json.loads((run / "extractor.json").read_text())
    meta["lfw_view2"] = {k: v for k, v in lfw.items() if k not in ("distances", "same")}
    shutil.copyfile(run / "extractor.keras", dest / "extractor.keras")
    (dest / "extractor.json").write_text(json.dumps(meta, indent=2))
    write_card(run, dest / "MODEL_CARD.md")
    log(f"shipped {meta['version']} to {dest}")


if __name__ == "__main__":
    main()
