"""The training and evaluation toolkit behind `facesearch train`, `evaluate`, `calibrate` and `report`.

Library functions: the CLI only reads arguments and prints what comes back. TensorFlow loads inside them.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from facesearch.calibration import CALIBRATION_FILE, Calibration
from facesearch.errors import CalibrationFailed, FacesearchError, PhotoNotFound
from models.distance import cosine_distance

def calibrate(folder: Path, home: Path, extractor, detector, far: float = 1e-3, store: bool = True,
              max_different: int = 500_000) -> Calibration:
    """Pick the threshold for false-accept rate `far` on a folder with one subfolder of photos per person,
    measure the true-accept rate there, and (with `store`) save it in `home` for `verify` (and as a cap on
    the threshold of `who` and `search`).

    The threshold at `far` rests on the few different-person pairs nearest together, and so on who happens to
    be in the folder: it is given a 95 % interval from a bootstrap over the people (`models.training.metrics.far_curve`),
    and the interval's cautious end (the lower threshold, fewer false accepts) is the one stored."""
    from models.training.chips import chip_photos
    from models.training.datasets import load_folders
    from models.training.evaluate import all_pairs
    from models.training.metrics import far_curve

    folder = Path(folder)
    if not folder.is_dir():
        raise PhotoNotFound(f"{folder}: no such folder")
    ds = load_folders(folder)
    if len(ds.identities) < 2:
        raise CalibrationFailed(f"{folder}: calibration needs subfolders of at least two people "
                                f"(found {len(ds.identities)})")
    chips_list, found_list = [], []
    for start in range(0, len(ds.paths), 32):
        cs = chip_photos(list(ds.paths[start:start + 32]), detector, geometry=extractor.info.chip)
        chips_list.append(cs.chips)
        found_list.append(cs.found)
    chips, found = np.concatenate(chips_list), np.concatenate(found_list)
    labels = np.asarray(ds.labels)[found]
    emb = extractor.embed(chips[found])
    a, b, same = all_pairs(labels, max_different, seed=0)
    if same.sum() < 1 or (~same).sum() < 1:
        raise CalibrationFailed(f"{folder}: needs at least two photos with a face for one person and two people")
    d = cosine_distance(emb[a], emb[b])
    curve = far_curve(d[~same], labels[a][~same], labels[b][~same], fars=(far,), rounds=200)
    estimate, low, high = (float(curve[k][0]) for k in ("threshold", "low", "high"))
    threshold = min(estimate, low)
    note = ""
    if (~same).sum() < 1.0 / far:
        note = f" (only {(~same).sum()} different pairs: too few to measure FAR {far:g} precisely)"
    cal = Calibration(extractor.version, threshold, far, float(np.mean(d[same] < threshold)),
                      float(np.mean(d[~same] < threshold)),
                      int(same.sum()), int((~same).sum()), int(found.sum()), len(set(labels.tolist())),
                      tuple(str(p) for p, ok_ in zip(ds.paths, found) if not ok_),
                      time.strftime("%Y-%m-%d %H:%M:%S"), note.strip(), estimate, (low, high))
    if store:
        from models.files import write_atomic
        from indexer.private import private_dir

        write_atomic(private_dir(Path(home)) / CALIBRATION_FILE, cal.to_json(), private=True)  # as the home's files
    return cal


def train(config, run: Path, loss: str = "triplet", steps: int | None = None, split: tuple = (0.9, 0.1, 0.0),
          softmax_weight: float | None = None, max_hours: float = 0.0, ship: bool = False, lfw: bool = True,
          backbone: str = "scratch", learning_rate: float | None = None, frozen_stages: int | None = None,
          log=print) -> Path:
    """Train (or resume) one extractor in `run`, then plot, calibrate and evaluate it; with `ship`, copy it
    into models/weights with its model card. Returns the run folder. `backbone` "dlib" fine-tunes the ported
    dlib network with the shipped recipe (`models.training.train.recipe`; 0 steps: the plain port), "scratch"
    trains the baseline from random weights; arguments left None take the backbone's defaults."""
    from models import WEIGHTS_DIR
    from models.training.runs import run_training, ship as ship_run
    from models.training.train import BACKBONES, LOSSES, TrainConfig, cache_name, geometry_of, recipe

    if loss not in LOSSES:
        raise FacesearchError(f"--loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    if backbone not in BACKBONES:
        raise FacesearchError(f"--backbone must be one of {', '.join(BACKBONES)}, not {backbone!r}")
    if steps == 0 and backbone != "dlib":
        raise FacesearchError("--steps 0 (no training) makes sense for --backbone dlib only (the plain port)")
    _require_data(config.data_dir / "train")
    cfg = TrainConfig(chips=str(config.chips_dir / cache_name("train", geometry_of(backbone))), run=str(run),
                      loss=loss, split=split, max_hours=max_hours, backbone=backbone,
                      **recipe(backbone, steps=steps, softmax_weight=softmax_weight, learning_rate=learning_rate,
                               frozen_stages=frozen_stages))
    run = run_training(cfg, config.data_dir, config.chips_dir, log=log, evaluate_lfw_too=lfw)
    if ship and (run / "lfw.json").exists():
        ship_run(run, WEIGHTS_DIR, log=log)
    return run


def evaluate(config, out: Path, run: Path | None = None, lfw: bool = True, log=print) -> dict:
    """Evaluate the configured extractor: LFW View 2 (10 folds) and, given a training run with a test split,
    its held-out test identities. Writes NAME.json and ROC, distance-histogram and confusion PNGs into `out`;
    returns {name: numbers}."""
    from models.training.chips import load_cache
    from models.training.evaluate import evaluate_identities, evaluate_lfw, write_evaluation
    from facesearch.home import load_extractor
    from models.training.runs import lfw_chips, load_pair_head, split_chips
    from models.training.train import cache_name

    extractor = load_extractor(config)  # a missing model is a named error, not a traceback
    pair_head = load_pair_head(run) if run else None
    results = {}
    if run is not None:
        split = Path(run) / "split.csv"
        if not split.exists() or ",test" not in split.read_text():
            raise FacesearchError(f"{split}: no test identities in this run (train with --split 0.6,0.2,0.2)")
        train_chips = load_cache(config.chips_dir / cache_name("train", extractor.info.chip))
        chips, names = split_chips(Path(run), train_chips, "test")
        labels = np.unique(names, return_inverse=True)[1]
        r, d, same = evaluate_identities(extractor, chips, labels, pair_head=pair_head)
        write_evaluation(r, d, same, out, "test-split")
        results["test-split"] = r
        log(f"test split: accuracy {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}")
    if lfw:
        _require_data(config.data_dir / "lfw")
        r = evaluate_lfw(extractor, config.data_dir / "lfw",
                         lfw_chips(config.data_dir, config.chips_dir, extractor.info.chip), pair_head=pair_head)
        write_evaluation(r, np.array(r.pop("distances")), np.array(r.pop("same")), out, "lfw-view2")
        results["lfw-view2"] = r
    return results


def _require_data(path: Path) -> None:
    if not Path(path).exists():
        raise PhotoNotFound(f"{path}: not found. Point FACESEARCH_DATA at the face data folder (it holds train/ and lfw/).")
