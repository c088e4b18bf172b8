"""What the detector's landmark handling does to the shipped extractor: rounded or fractional points, and the
main-face fallback below the detection score.

    python scripts/compare_landmarks.py                 # validation identities (about 3 minutes)
    python scripts/compare_landmarks.py --lfw           # and LFW View 2 (about 8 more)

MTCNN runs once per photo (`models.cascade.Cascade`, every face it reports, down to its own 0.8); the variants
differ only in what is done with its rows:

- `rounded`: landmarks rounded to whole pixels, faces scoring at least 0.9 (the detector before 2026-12-03);
- `fractional`: landmarks as the network gives them, faces scoring at least 0.9;
- `fractional + main-face fallback`: as `fractional`, and where no face reaches 0.9 the likeliest one below
  (`models.detect.MAIN_FACE_MIN_SCORE`), as `verify`, `enroll` and the benchmarks' loose crops now do.

Validation identities: the photos of `--split`'s validation part (`split.csv`) with a face at 0.9, scored as
`scripts/compare_extractors.py` scores two extractors (every same-person pair, 500,000 different-person pairs,
TAR at FAR 1e-3 and 1e-2, 95 % interval of the difference over a bootstrap of identities). The fallback adds
no photo there (those photos have a face at 0.9 by construction); the number of photos it recovers is shown.
LFW View 2: 10-fold accuracy and TAR as `bench/lfw_vs_face_recognition.py` scores them, the centre of the
photo where no face is found.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

VARIANTS = ("rounded", "fractional", "fractional + main-face fallback")


def faces_of(rows: np.ndarray, variant: str, min_score: float):
    """The Face objects of one photo's cascade rows under `variant`, and the score floor main_face uses."""
    from models.detect import MAIN_FACE_MIN_SCORE
    from models.faces import Box, Face

    floor = MAIN_FACE_MIN_SCORE if variant.endswith("fallback") else min_score
    faces = []
    for r in rows[rows[:, 5] >= floor]:
        points = np.stack([r[6:11], r[11:16]], axis=1)
        if variant == "rounded":
            points = np.round(points)
        faces.append(Face(Box(*(float(v) for v in np.round(r[1:5]))), points.astype(np.float32), float(r[5])))
    return faces


def chips_of(paths: list[str], rows: list[np.ndarray], variant: str, geometry, min_score: float):
    """One chip per photo (the centre of the photo where no face is chosen) and whether a face was chosen."""
    from models.align import align, centre_face
    from models.detect import main_face
    from models.image import read_image

    chips, found = [], []
    for path, r in zip(paths, rows):
        image = read_image(Path(path))
        h, w = image.shape[:2]
        face = main_face(faces_of(r, variant, min_score), w, h, min_score)
        found.append(face is not None)
        chips.append(align(image, face or centre_face(w, h), geometry))
    return np.stack(chips), np.array(found)


def cascade_rows(paths: list[str], cascade, max_side: int, desc: str) -> list[np.ndarray]:
    """Every face the cascade reports in each photo (one photo per call: sizes vary), in photo pixels."""
    from tqdm import tqdm

    from models.detect import Detector
    from models.image import read_image

    out = []
    for path in tqdm(paths, desc=desc, unit="photo"):
        image = read_image(Path(path))
        factor = min(1.0, max_side / max(image.shape[:2]))
        if factor < 1.0:
            h, w = round(image.shape[0] * factor), round(image.shape[1] * factor)
            image = Detector._scaled(image, w, h)
        rows = cascade.detect([image])
        rows[:, 1:] /= factor
        out.append(rows)
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model", default=None, help="extractor folder (default models/weights)")
    ap.add_argument("--split", default=None,
                    help="run folder whose split.csv names the validation identities (default: the seeded split "
                         "every training run makes, TrainConfig's shares and seed)")
    ap.add_argument("--lfw", action="store_true", help="also score LFW View 2")
    ap.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds (default 1000)")
    args = ap.parse_args()

    from models.cascade import Cascade
    from models.training.datasets import load_folders, load_lfw_pairs
    from models.detect import DEFAULT_MAX_SIDE, Detector
    from models.training.evaluate import CALIBRATION_DIFFERENT_PAIRS, all_pairs, pair_distances
    from models.extractor import DEFAULT_MODEL
    from models.training.export import open_extractor
    from models.training.metrics import WeightedTar, identity_bootstrap, tar_at_far, ten_fold
    from models.training.train import TrainConfig, identity_of, split_identities

    extractor = open_extractor(Path(args.model) / "extractor.keras" if args.model else DEFAULT_MODEL, batch_size=128)
    geometry, min_score = extractor.info.chip, Detector().min_score
    cascade = Cascade()
    data = Path(args.data)

    train_paths = [str(p) for p in load_folders(data / "train").paths]
    if args.split:
        split = Path(args.split) / "split.csv"
        if not split.exists():
            sys.exit(f"{split}: missing (give --split RUN, a run folder with the split to use)")
        ids = {line.split(",")[0] for line in split.read_text().splitlines()[1:] if line.endswith(",val")}
    else:
        cfg = TrainConfig(chips="", run="")  # only its split shares and seed are read
        ids = set(split_identities(sorted({identity_of(p) for p in train_paths}), tuple(cfg.split), cfg.seed)[1])
    paths = [p for p in train_paths if identity_of(p) in ids]
    rows = cascade_rows(paths, cascade, DEFAULT_MAX_SIDE, "validation photos")
    confident = np.array([bool((r[:, 5] >= min_score).any()) for r in rows])
    recovered = int(sum(len(r) > 0 for r, ok in zip(rows, confident) if not ok))
    keep = np.where(confident)[0]
    names = np.array([identity_of(paths[i]) for i in keep])
    a, b, same = all_pairs(names, CALIBRATION_DIFFERENT_PAIRS, 0)
    print(f"{len(paths)} validation photos of {len(ids)} identities; {len(keep)} with a face at {min_score} "
          f"(scored); the fallback finds one in {recovered} of the other {len(paths) - len(keep)}")
    tars, point = {}, {}
    for variant in VARIANTS[:2]:
        chips, _ = chips_of([paths[i] for i in keep], [rows[i] for i in keep], variant, geometry, min_score)
        emb = extractor.embed(chips)
        d = pair_distances(emb[a], emb[b])
        tars[variant] = WeightedTar(d, same)
        point[variant] = {far: tar_at_far(d, same, far) for far in (1e-3, 1e-2)}
        print(f"  {variant}: TAR at FAR 1e-3 {100 * point[variant][1e-3]:.2f} %, "
              f"at 1e-2 {100 * point[variant][1e-2]:.2f} %", flush=True)
    for far in (1e-3, 1e-2):
        diffs = [tars[VARIANTS[1]].at(w, far) - tars[VARIANTS[0]].at(w, far)
                 for w in identity_bootstrap(names[a], names[b], args.rounds, 0)]
        low, high = np.percentile(diffs, [2.5, 97.5])
        diff = point[VARIANTS[1]][far] - point[VARIANTS[0]][far]
        print(f"  fractional minus rounded at FAR {far:.0e}: {100 * diff:+.2f} (95 % interval {100 * low:+.2f} "
              f"to {100 * high:+.2f}, {args.rounds} rounds over identities)")

    if not args.lfw:
        return
    pairs = load_lfw_pairs(data / "lfw")
    lfw_paths = sorted({str(p.a) for p in pairs} | {str(p.b) for p in pairs})
    where = {p: i for i, p in enumerate(lfw_paths)}
    ia, ib = (np.array([where[str(getattr(p, side))] for p in pairs]) for side in ("a", "b"))
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    rows = cascade_rows(lfw_paths, cascade, DEFAULT_MAX_SIDE, "LFW photos")
    print(f"\n| LFW View 2 ({len(lfw_paths)} photos) | accuracy | TAR at FAR 1e-3 | TAR at FAR 1e-2 | no face |")
    print("| --- | --- | --- | --- | --- |")
    for variant in VARIANTS:
        chips, found = chips_of(lfw_paths, rows, variant, geometry, min_score)
        emb = extractor.embed(chips)
        d = pair_distances(emb[ia], emb[ib])
        r = ten_fold(d, same, folds)
        print(f"| {variant} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} % "
              f"| {100 * tar_at_far(d, same, 1e-3):.2f} % | {100 * tar_at_far(d, same, 1e-2):.2f} % "
              f"| {int((~found).sum())} |", flush=True)


if __name__ == "__main__":
    main()
