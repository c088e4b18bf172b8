"""One training run from start to shipped model, in stages that each skip when their output exists, so the
same command resumes after a kill: chip caches, training (checkpointed), loss curve, threshold calibration
on the validation identities, evaluation on LFW View 2 and on the test identities, and shipping.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from models.align import ARCFACE_112, ChipGeometry
from models.files import write_atomic
from models.training.export import QUANT_PRECISION, QUANT_SUFFIX
from models.training.train import TrainConfig, cache_name, geometry_of, identity_of

# The threshold `verify` and `who` use by default: calibrated on validation identities for this FAR.
# Not 1e-2: `who` compares a face with every enrolled face, so false accepts add up; with the first model
# 1e-2 named 10 of 30 never-enrolled people as someone, 1e-3 none, while 45 rather than 46 of 50 photos of
# enrolled people were still named right (scripts/threshold_check.py).
SHIPPED_FAR = 1e-3

# Training photos (at most 128 px) are centred on a black square this large before detection: they batch
# together, and the margin of a quarter side lets MTCNN find the faces of tight crops (Yale B).
TRAIN_CANVAS = 192


def run_training(cfg: TrainConfig, data: Path, chips_root: Path, log=print, evaluate_lfw_too: bool = True) -> Path:
    """Every stage of a run; returns the run folder. Rerun to resume."""
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    _train_cache(cfg, data, log)
    weights = run / "extractor.keras"
    if cfg.distill_weight and cfg.distill_mode != "anchor" and not weights.exists():
        from models.training.teacher import build_teacher

        log(f"teacher (dlib) embeddings for the photos of {cfg.chips}")
        build_teacher(cfg.chips)
    if not weights.exists():
        from models.training.train import train

        train(cfg, log=log)
        if not weights.exists():
            log("not finished; rerun the same command to resume")
            return run
    if (run / "history.csv").exists():  # the plain port (0 steps) has none
        from models.training.plots import plot_history

        plot_history(run / "history.csv", run / "loss.png")
    return measure(run, cfg, data, chips_root, log, evaluate_lfw_too)


def _train_cache(cfg: TrainConfig, data: Path, log=print) -> None:
    """The chip cache of the training photos, built first when missing."""
    if not list(Path(cfg.chips).glob("shard-*.npz")):
        from models.training.chips import build_cache
        from models.training.datasets import load_folders

        log(f"building the chip cache of {data / 'train'} in {cfg.chips}")
        build_cache(list(load_folders(data / "train").paths), cfg.chips, canvas=TRAIN_CANVAS,
                    geometry=geometry_of(cfg.backbone))


def measure(run: Path, cfg: TrainConfig, data: Path, chips_root: Path, log=print,
            evaluate_lfw_too: bool = True) -> Path:
    """The stages after training, each skipped when done: the engine's 8-bit graph, thresholds calibrated on
    the validation identities through it, the test identities (when the split has any) and LFW View 2."""
    from models.training.chips import load_cache

    weights = run / "extractor.keras"
    info = run / "extractor.json"
    if not info.exists():
        meta = {"version": _version(weights, cfg), "dim": cfg.dim, "threshold": 1.0,
                "threshold_far": SHIPPED_FAR, "flip": cfg.flip, "loss": cfg.loss, "backbone": cfg.backbone}
        if cfg.backbone != "scratch":
            meta["chip"] = geometry_of(cfg.backbone).as_json()
        info.write_text(json.dumps(meta, indent=2))
    if json.loads(info.read_text()).get("graph", {}).get("precision") != QUANT_PRECISION:
        _write_graph(run, cfg, weights, log)  # none yet, or one of an earlier scheme (export.OLD_QUANT_SUFFIXES)
    from models.training.export import open_extractor

    pair_head = load_pair_head(run)
    calib_file = run / "calibration.json"
    if not calib_file.exists():
        from models.training.evaluate import calibrate, embed_chipset

        val, names = split_chips(run, load_cache(cfg.chips), "val")
        calib = calibrate(embed_chipset(open_extractor(weights), val), names)
        calib.update(photos=int(len(names)), identities=int(len(set(names.tolist()))))
        calib_file.write_text(json.dumps(calib, indent=2))
        log(f"calibration on validation identities: {calib}")
    calib = json.loads(calib_file.read_text())
    meta = json.loads(info.read_text())
    meta.update(threshold=calib[far_key(SHIPPED_FAR)], threshold_far=SHIPPED_FAR,
                threshold_far_1e_2=calib["threshold_far_1e-2"], threshold_far_1e_3=calib["threshold_far_1e-3"])
    info.write_text(json.dumps(meta, indent=2))
    extractor = open_extractor(weights)

    if cfg.split[2] > 0 and not (run / "test.json").exists():
        from models.training.evaluate import evaluate_identities, write_evaluation

        test, names = split_chips(run, load_cache(cfg.chips), "test")
        labels = np.unique(names, return_inverse=True)[1]
        result, d, same = evaluate_identities(extractor, test, labels, pair_head=pair_head)
        write_evaluation(result, d, same, run, "test")
        log(f"test identities: {result['accuracy_mean']:.4f} +- {result['accuracy_std']:.4f}")
    if evaluate_lfw_too and not (run / "lfw.json").exists():
        from models.training.evaluate import evaluate_lfw, write_evaluation

        t0 = time.time()
        result = evaluate_lfw(extractor, data / "lfw", lfw_chips(data, chips_root, geometry_of(cfg.backbone)),
                              pair_head=pair_head)
        result["seconds"] = round(time.time() - t0, 1)
        (run / "lfw.json").write_text(json.dumps(result))
        log(f"LFW View 2: {result['accuracy_mean']:.4f} +- {result['accuracy_std']:.4f}, "
            f"TAR@FAR1e-3 {result['tar_at_far_1e-3']:.4f}, AUC {result['roc_auc']:.4f}")
    if (run / "lfw.json").exists() and not (run / "lfw-view2-roc.png").exists():
        from models.training.evaluate import write_evaluation

        result = json.loads((run / "lfw.json").read_text())
        write_evaluation(result, np.array(result["distances"]), np.array(result["same"]), run, "lfw-view2")
    return run


# What a run measured through an earlier graph of its extractor; measured again after `_write_graph`.
MEASURED = ("calibration.json", "lfw.json", "lfw-view2*", "test.json", "test-*")


def _write_graph(run: Path, cfg: TrainConfig, weights: Path, log=print) -> None:
    """extractor.onnx, the graph the engine runs, quantized to 8 bits on chips of training identities; its
    vectors differ slightly from the float network's, so the version gets `QUANT_SUFFIX` and the thresholds and
    evaluations are measured again through it."""
    from models.training.chips import load_cache
    from models.training.export import CALIBRATION_CHIPS, OLD_QUANT_SUFFIXES, calibration_sample, export_extractor

    train_set, _ = split_chips(run, load_cache(cfg.chips), "train")
    export_extractor(weights, sample=calibration_sample(train_set.chips))
    for pattern in MEASURED:
        for path in run.glob(pattern):
            path.unlink()
    meta = json.loads((run / "extractor.json").read_text())
    version = meta["version"]
    for suffix in (QUANT_SUFFIX, *OLD_QUANT_SUFFIXES):
        version = version.removesuffix(suffix)
    meta["version"] = version + QUANT_SUFFIX
    meta["graph"] = {"file": "extractor.onnx", "precision": QUANT_PRECISION,
                     "calibration": f"{CALIBRATION_CHIPS} chips of training identities and their mirror images, "
                                    "0.001-99.999 % percentiles"}
    (run / "extractor.json").write_text(json.dumps(meta, indent=2))
    log(f"wrote {run / 'extractor.onnx'} (8-bit) as version {meta['version']}")


def far_key(far: float) -> str:
    """The calibration.json key of the threshold for a false-accept rate: 1e-3 -> "threshold_far_1e-3"."""
    return "threshold_far_" + f"{far:.0e}".replace("e-0", "e-")


def lfw_chips(data: Path, chips_root: Path, geometry: ChipGeometry = ARCFACE_112):
    """The chip cache of the LFW View 2 photos for a chip geometry (default: the baseline's), built first if
    missing or incomplete."""
    from models.training.chips import build_cache, load_cache
    from models.training.datasets import load_lfw_pairs

    cache = Path(chips_root) / cache_name("lfw-view2", geometry)
    pairs = load_lfw_pairs(Path(data) / "lfw")
    photos = sorted({str(p.a) for p in pairs} | {str(p.b) for p in pairs})
    if not list(cache.glob("shard-*.npz")) or len(load_cache(cache).paths) != len(photos):
        build_cache([Path(p) for p in photos], cache, geometry=geometry)
    return load_cache(cache)


def split_chips(run: Path, cache, which: str):
    """The chips (faces found only) and identity names of one part of the run's split."""
    from models.training.chips import ChipSet

    ids = {line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:]
           if line.endswith("," + which)}
    names = np.array([identity_of(p) for p in cache.paths])
    keep = np.isin(names, list(ids)) & cache.found
    return ChipSet(cache.chips[keep], cache.found[keep], cache.scores[keep],
                   tuple(p for p, k in zip(cache.paths, keep) if k)), names[keep]


def load_pair_head(run: Path):
    """The pair classifier's head saved by a `pairs` run, or None for the other objectives."""
    f = run / "pair_head.keras"
    if not f.exists():
        return None
    import keras

    return keras.models.load_model(f, compile=False)


def _version(weights: Path, cfg: TrainConfig) -> str:
    """fs-<what>-<date>-<first 10 hex digits of the weights' sha256>: <what> is the objective for the baseline,
    `dlib-port` for the plain port, `dlib-<objective>` for a fine-tune of it."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:10]
    what = cfg.loss if cfg.backbone == "scratch" else ("dlib-port" if cfg.steps == 0 else f"dlib-{cfg.loss}")
    return f"fs-{what}-{time.strftime('%Y%m%d')}-{digest}"


FIGURES = ("loss.png", "lfw-view2-roc.png", "lfw-view2-distances.png")


def requantize(dest: Path, data: Path, chips_root: Path, work: Path, log=print) -> bool:
    """Rewrite a shipped extractor's engine graph with the current `models.training.export.quantize` scheme when it was
    written with an earlier one, measure it again (thresholds, LFW) in the folder `work`, then update `dest`:
    the graph, extractor.json (a new version: galleries are re-embedded by `facesearch reembed`), the LFW
    figures and the model card's measured sections. The float weights are not touched. The split is that of
    the default recipe (seed and shares), which every shipped run used. False when there was nothing to do."""
    from models.training.card import refresh_card
    from models.training.train import prepare

    dest, work = Path(dest), Path(work)
    shipped = json.loads((dest / "extractor.json").read_text())
    if shipped.get("graph", {}).get("precision") == QUANT_PRECISION:
        log(f"{dest}: its graph is already of the current scheme ({QUANT_PRECISION})")
        return False
    backbone = shipped.get("backbone", "scratch")
    cfg = TrainConfig(chips=str(Path(chips_root) / cache_name("train", geometry_of(backbone))), run=str(work),
                      loss=shipped.get("loss", "triplet"), flip=shipped.get("flip", True), backbone=backbone)
    work.mkdir(parents=True, exist_ok=True)
    _train_cache(cfg, data, log)
    if not (work / "extractor.keras").exists():
        prepare(cfg)
        (work / "config.json").write_text(json.dumps(asdict(cfg), indent=2))  # the split, for other scripts
        shutil.copyfile(dest / "extractor.keras", work / "extractor.keras")
        (work / "extractor.json").write_text(json.dumps(
            {k: v for k, v in shipped.items() if k not in ("lfw_view2", "graph")}, indent=2))
    measure(work, cfg, data, chips_root, log)
    lfw = json.loads((work / "lfw.json").read_text())
    meta = json.loads((work / "extractor.json").read_text())
    meta["lfw_view2"] = {k: v for k, v in lfw.items() if k not in ("distances", "same")}
    write_atomic(dest / "extractor.onnx", (work / "extractor.onnx").read_bytes())
    write_atomic(dest / "extractor.json", json.dumps(meta, indent=2))
    for figure in FIGURES:
        if (work / figure).exists():
            shutil.copyfile(work / figure, dest / figure)
    refresh_card(dest / "MODEL_CARD.md", shipped["version"], meta,
                 json.loads((work / "calibration.json").read_text()), lfw)
    log(f"{dest}: graph rewritten as {meta['version']} (was {shipped['version']})")
    return True


def ship(run: Path, dest: Path, log=print) -> None:
    """Copy the run's extractor into `dest` (models/weights) with its ONNX graph, extractor.json and the model
    card."""
    from models.training.card import write_card

    run, dest = Path(run), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    lfw = json.loads((run / "lfw.json").read_text())
    meta = json.loads((run / "extractor.json").read_text())
    meta["lfw_view2"] = {k: v for k, v in lfw.items() if k not in ("distances", "same")}
    for name in ("extractor.keras", "extractor.onnx"):  # the graph calibrated and evaluated, as it is
        write_atomic(dest / name, (run / name).read_bytes())
    write_atomic(dest / "extractor.json", json.dumps(meta, indent=2))
    for figure in FIGURES:  # shown in the model card; one the run has not (a port has no loss curve) goes
        if (run / figure).exists():
            shutil.copyfile(run / figure, dest / figure)
        elif (dest / figure).exists():
            (dest / figure).unlink()
    write_card(run, dest / "MODEL_CARD.md")
    log(f"shipped {meta['version']} to {dest}")
