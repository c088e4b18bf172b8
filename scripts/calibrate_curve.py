"""The shipped extractor's false-accept curve: the threshold at each false-accept rate from 1e-1 to 1e-6, with a
95 % interval from a bootstrap over identities, measured on every different-person pair of the held-out
identities. `who` and `search` choose their threshold from it for a stated share of strangers named as someone
(`models.thresholds.threshold_for_fpir`). `--write` stores it in the model's JSON file and makes the cautious end
of the interval at the model's false-accept rate (1e-3) `verify`'s threshold.

    python scripts/calibrate_curve.py                  # print the curve (about 2 minutes)
    python scripts/calibrate_curve.py --write          # and store it in models/weights/extractor.json

The held-out identities are the validation part of the seeded split every training run makes (TrainConfig's
shares and seed: 135 people, about 2,700 photos of `../shared/data/train`, never trained on); `--split RUN`
takes a run folder's `split.csv` instead. Each photo's main face is detected, aligned and embedded as the
engine does it. LFW plays no part.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model", default=None, help="extractor folder (default models/weights)")
    ap.add_argument("--split", default=None, help="run folder whose split.csv names the held-out identities")
    ap.add_argument("--rounds", type=int, default=200, help="bootstrap rounds (default 200)")
    ap.add_argument("--write", action="store_true", help="store the curve in the model's JSON file")
    args = ap.parse_args()

    from models.training.chips import chip_photos
    from models.training.datasets import load_folders
    from models.detect import Detector
    from models.distance import cosine_distances
    from models.extractor import DEFAULT_MODEL
    from models.files import write_atomic
    from models.training.export import open_extractor
    from models.training.metrics import far_curve
    from models.training.train import TrainConfig, identity_of, split_identities

    weights = Path(args.model) / "extractor.keras" if args.model else DEFAULT_MODEL
    extractor = open_extractor(weights, batch_size=128)
    paths = load_folders(Path(args.data) / "train").paths
    if args.split:
        rows = (Path(args.split) / "split.csv").read_text().splitlines()[1:]
        ids = {line.split(",")[0] for line in rows if line.endswith(",val")}
        source = f"the validation identities of {Path(args.split) / 'split.csv'}"
    else:
        cfg = TrainConfig(chips="", run="")  # only its split shares and seed are read
        ids = set(split_identities(sorted({identity_of(str(p)) for p in paths}), tuple(cfg.split), cfg.seed)[1])
        source = f"the validation identities of the seeded training split (shares {cfg.split}, seed {cfg.seed})"
    held_out = [p for p in paths if identity_of(str(p)) in ids]
    detector = Detector()
    chips, names = [], []
    for start in range(0, len(held_out), 256):
        part = chip_photos(held_out[start:start + 256], detector, geometry=extractor.info.chip)
        chips.append(part.chips[part.found])
        names += [identity_of(p) for p, ok in zip(part.paths, part.found) if ok]
    emb = np.concatenate([extractor.embed(c) for c in chips])
    labels = np.unique(names, return_inverse=True)[1]
    # every different-person pair, by blocks of rows
    dist, la, lb = [], [], []
    for start in range(0, len(emb), 512):
        d = cosine_distances(emb[start:start + 512], emb)
        i, j = np.nonzero((np.arange(start, start + len(d))[:, None] < np.arange(len(emb))[None, :])
                          & (labels[start:start + 512, None] != labels[None, :]))
        dist.append(d[i, j].astype(np.float32))
        la.append(labels[start + i])
        lb.append(labels[j])
    curve = far_curve(np.concatenate(dist), np.concatenate(la), np.concatenate(lb), rounds=args.rounds)
    curve.update(photos=int(len(emb)), source=source, model=extractor.version,
                 measured=dt.date.today().isoformat(), command="python scripts/calibrate_curve.py --write")

    print(f"{extractor.version}: {len(emb)} photos of {len(ids)} held-out identities, "
          f"{curve['pairs_different']:,} different-person pairs, {args.rounds} bootstrap rounds over identities\n")
    print("| false-accept rate | threshold | 95 % interval | pairs under it |")
    print("| --- | --- | --- | --- |")
    for far, t, low, high in zip(curve["far"], curve["threshold"], curve["low"], curve["high"]):
        print(f"| {far:.1e} | {t:.4f} | {low:.4f} to {high:.4f} | {far * curve['pairs_different']:,.0f} |")
    if args.write:
        meta = weights.with_suffix(".json")
        raw = json.loads(meta.read_text())
        raw["far_curve"] = curve
        # verify's one-to-one threshold: the cautious end of the interval at the model's false-accept rate
        at = int(np.argmin(np.abs(np.log10(curve["far"]) - np.log10(raw["threshold_far"]))))
        if not np.isclose(curve["far"][at], raw["threshold_far"]):
            sys.exit(f"the curve has no point at the model's FAR {raw['threshold_far']:g}")
        raw.setdefault("threshold_before_curve", raw["threshold"])
        raw["threshold"] = curve["low"][at]
        raw["threshold_estimate"] = curve["threshold"][at]
        raw["threshold_interval"] = [curve["low"][at], curve["high"][at]]
        write_atomic(meta, json.dumps(raw, indent=2) + "\n")
        print(f"\nwrote the curve into {meta}; verify's threshold at FAR {raw['threshold_far']:g} is now the "
              f"cautious end of its interval, {raw['threshold']:.4f} (estimate {raw['threshold_estimate']:.4f}; "
              f"before: {raw['threshold_before_curve']:.4f})")


if __name__ == "__main__":
    main()
