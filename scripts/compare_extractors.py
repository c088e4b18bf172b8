"""Does a new extractor beat the shipped one on the validation identities by more than chance?

    python scripts/compare_extractors.py models/weights runs/triplet-v4-warm
    python scripts/compare_extractors.py models/weights runs/triplet-v4-warm --rounds 2000 --json out.json

Each folder holds an `extractor.keras` with its 8-bit `extractor.onnx` beside it (a run folder, or
models/weights). Both embed the validation photos of the second folder's split (`split.csv`; --split names
another run whose split to use) through the graph the engine runs, with mirror images as the engine does,
and are scored on the same pairs as a run's calibration: every same-person pair and 500,000 different-person
pairs. The table gives each one's true-accept rate at FAR 1e-3 (the engine's operating point) and 1e-2, and
the difference (second minus first) with a 95 % interval from a bootstrap over identities: the 135 people
are drawn again with replacement, since photos of one person are not independent.

The rule this project ships by: a new run replaces the shipped extractor only when the interval of the
difference at FAR 1e-3 lies above zero. A new model version makes every gallery re-embed
(`facesearch reembed`), which a change within chance does not pay for. LFW is never looked at here.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

FARS = (1e-3, 1e-2)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("first", help="folder of the extractor to beat (e.g. models/weights)")
    ap.add_argument("second", help="folder of the candidate (a run folder)")
    ap.add_argument("--split", help="run folder whose split.csv picks the validation identities (default: second)")
    ap.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()

    from models.training.chips import load_cache
    from models.training.evaluate import CALIBRATION_DIFFERENT_PAIRS, all_pairs, pair_distances
    from models.training.export import open_extractor
    from models.training.metrics import WeightedTar, identity_bootstrap, tar_at_far
    from models.training.runs import split_chips
    from models.training.train import cache_name

    folders = [Path(args.first), Path(args.second)]
    split_run = Path(args.split or args.second)
    for folder in folders:
        if not (folder / "extractor.keras").exists():
            sys.exit(f"{folder}: no extractor.keras here (give a run folder or models/weights)")
    if not (split_run / "split.csv").exists():
        sys.exit(f"{split_run}: no split.csv here (give --split RUN, a run folder with the split to use)")
    # each extractor reads the validation photos cut for its own chip geometry; the photos scored are those
    # both caches found a face in (one detector, so the same ones), in one order
    extractors = [open_extractor(folder / "extractor.keras") for folder in folders]
    sets = []
    for extractor in extractors:
        try:
            cache = load_cache(Path(args.chips) / cache_name("train", extractor.info.chip))
        except FileNotFoundError as e:
            sys.exit(f"{e}: python scripts/build_chips.py --geometry {extractor.info.chip.name} builds it")
        chips, names = split_chips(split_run, cache, "val")
        sets.append(dict(zip(chips.paths, zip(chips.chips, names))))
    paths = sorted(set(sets[0]) & set(sets[1]))
    names = np.array([sets[0][p][1] for p in paths])
    identities = len(set(names.tolist()))
    a, b, same = all_pairs(names, CALIBRATION_DIFFERENT_PAIRS, 0)  # the pairs `models.training.evaluate.calibrate` scores
    print(f"{len(names)} photos of {identities} validation identities ({split_run / 'split.csv'}); "
          f"{int(same.sum())} same and {int((~same).sum())} different pairs")

    versions, point, tars = [], [], []
    for extractor, chipset in zip(extractors, sets):
        versions.append(extractor.info.version)
        emb = extractor.embed(np.stack([chipset[p][0] for p in paths]))
        d = pair_distances(emb[a], emb[b])
        point.append({far: tar_at_far(d, same, far) for far in FARS})
        tars.append(WeightedTar(d, same))

    diffs = {far: [] for far in FARS}
    for weights in identity_bootstrap(names[a], names[b], args.rounds, args.seed):
        for far in FARS:
            diffs[far].append(tars[1].at(weights, far) - tars[0].at(weights, far))

    result = {"first": {"folder": str(folders[0]), "version": versions[0]},
              "second": {"folder": str(folders[1]), "version": versions[1]},
              "photos": int(len(names)), "identities": identities, "rounds": args.rounds}
    print(f"\n| true-accept rate on the validation identities | {versions[0]} | {versions[1]} | difference | "
          f"95 % interval ({args.rounds} rounds over identities) |")
    print("| --- | --- | --- | --- | --- |")
    for far in FARS:
        low, high = np.percentile(diffs[far], [2.5, 97.5])
        diff = point[1][far] - point[0][far]
        result[f"far_{far:.0e}"] = {"first": point[0][far], "second": point[1][far], "difference": diff,
                                    "interval": [float(low), float(high)]}
        print(f"| at FAR {far:.0e} | {100 * point[0][far]:.2f} % | {100 * point[1][far]:.2f} % | "
              f"{100 * diff:+.2f} | {100 * low:+.2f} to {100 * high:+.2f} |")
    low = result[f"far_{FARS[0]:.0e}"]["interval"][0]
    verdict = "ship it" if low > 0 else "keep the first"
    result["verdict"] = verdict
    print(f"\nat FAR {FARS[0]:.0e} the interval {'lies above zero' if low > 0 else 'reaches zero or below'}: {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
