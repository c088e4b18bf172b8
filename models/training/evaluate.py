"""Evaluating an extractor: threshold calibration on held-out identities, and LFW View 2 (10 folds).

LFW runs through the full path: detect and align every photo as stored (chip cache), embed, compare.
Photos where MTCNN found no face are embedded from the centre of the photo, where LFW puts the labelled
face, and counted.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from models.distance import cosine_distance
from models.training.chips import ChipSet
from models.training.datasets import load_lfw_pairs
from models.training.metrics import best_threshold, tar_at_far, ten_fold, threshold_at_far

# Different-identity pairs a calibration scores at most (every same-identity pair is scored).
CALIBRATION_DIFFERENT_PAIRS = 500_000


def embed_chipset(extractor, chips: ChipSet, batch: int = 256, progress: bool = True) -> np.ndarray:
    """Embeddings of every chip of a chip set, in its order."""
    from tqdm import tqdm

    out = []
    for start in tqdm(range(0, len(chips.chips), batch), disable=not progress, desc="embedding", unit="batch"):
        out.append(extractor.embed(chips.chips[start:start + batch]))
    return np.concatenate(out) if out else np.zeros((0, extractor.info.dim), np.float32)


def all_pairs(labels: np.ndarray, max_different: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every same-identity pair (i < j) plus up to `max_different` distinct different-identity pairs."""
    labels = np.asarray(labels)
    ii, jj = np.triu_indices(len(labels), k=1)
    same = labels[ii] == labels[jj]
    si, sj = ii[same], jj[same]
    di, dj = ii[~same], jj[~same]
    if len(di) > max_different:
        pick = np.random.default_rng(seed).choice(len(di), size=max_different, replace=False)
        di, dj = di[pick], dj[pick]
    a = np.concatenate([si, di])
    b = np.concatenate([sj, dj])
    return a, b, np.concatenate([np.ones(len(si), bool), np.zeros(len(di), bool)])


def calibrate(embeddings: np.ndarray, labels: np.ndarray, max_different: int = CALIBRATION_DIFFERENT_PAIRS,
              seed: int = 0) -> dict:
    """Thresholds (cosine distance) on pairs of held-out identities: at FAR 1e-2, at FAR 1e-3, and the
    accuracy-maximising one, with the true-accept rate at each FAR."""
    a, b, same = all_pairs(labels, max_different, seed)
    d = cosine_distance(embeddings[a], embeddings[b])
    return {
        "pairs_same": int(same.sum()),
        "pairs_different": int((~same).sum()),
        "threshold_far_1e-2": threshold_at_far(d, same, 1e-2),
        "tar_at_far_1e-2": tar_at_far(d, same, 1e-2),
        "threshold_far_1e-3": threshold_at_far(d, same, 1e-3),
        "tar_at_far_1e-3": tar_at_far(d, same, 1e-3),
        "threshold_best_accuracy": best_threshold(d, same),
    }


def pair_distances(emb_a: np.ndarray, emb_b: np.ndarray, pair_head=None) -> np.ndarray:
    """Distance of each pair of rows: cosine distance, or with a pair classifier's head 1 - P(same)."""
    if pair_head is None:
        return cosine_distance(emb_a, emb_b)
    from models.training.losses import pair_features

    logits = np.asarray(pair_head(pair_features(emb_a, emb_b), training=False)).reshape(-1)
    return (1.0 - 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def evaluate_identities(extractor, chips: ChipSet, labels: np.ndarray, pair_head=None, max_different: int = 200_000,
                        seed: int = 0, progress: bool = True) -> tuple[dict, np.ndarray, np.ndarray]:
    """Verification numbers on photos of held-out identities (a test split): every same pair and up to
    `max_different` different pairs, 10 random folds for the accuracy. Returns (numbers, distances, same)."""
    emb = embed_chipset(extractor, chips, progress=progress)
    a, b, same = all_pairs(labels, max_different, seed)
    d = pair_distances(emb[a], emb[b], pair_head)
    folds = np.random.default_rng(seed).integers(0, 10, len(d))
    result = ten_fold(d, same, folds)
    result.update(photos=int(len(labels)), identities=int(len(np.unique(labels))))
    return result, d, same


def write_evaluation(result: dict, distances: np.ndarray, same: np.ndarray, out: str | Path, name: str) -> list[Path]:
    """NAME.json (numbers), NAME-roc.png, NAME-distances.png, NAME-confusion.png under `out`."""
    import json

    from models.training.plots import plot_confusion, plot_distance_histograms, plot_roc

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = result["threshold_mean"]
    (out / f"{name}.json").write_text(json.dumps({k: v for k, v in result.items() if k not in ("distances", "same")}, indent=2))
    return [out / f"{name}.json",
            plot_roc(distances, same, out / f"{name}-roc.png", title=name),
            plot_distance_histograms(distances, same, t, out / f"{name}-distances.png"),
            plot_confusion(distances, same, t, out / f"{name}-confusion.png")]


def evaluate_lfw(extractor, lfw_root: str | Path, chips: ChipSet, progress: bool = True, pair_head=None) -> dict:
    """LFW View 2 10-fold numbers for `extractor`, `chips` being the chip cache of the pairs' photos.
    The per-pair distances and same flags come back too, under "distances" and "same"."""
    pairs = load_lfw_pairs(lfw_root)
    # the cache may name photos by relative paths: compare them resolved
    row = {os.path.realpath(p): i for i, p in enumerate(chips.paths)}
    wanted = [os.path.realpath(p) for pair in pairs for p in (pair.a, pair.b)]
    missing = [p for p in wanted if p not in row]
    if missing:
        raise ValueError(f"chip cache lacks {len(missing)} LFW photos, e.g. {missing[0]}: rebuild it")
    emb = embed_chipset(extractor, chips, progress=progress)
    a = np.array([row[p] for p in wanted[0::2]])
    b = np.array([row[p] for p in wanted[1::2]])
    d = pair_distances(emb[a], emb[b], pair_head)
    same = np.array([p.same for p in pairs])
    result = ten_fold(d, same, np.array([p.fold for p in pairs]))
    result["same"] = same.tolist()
    result["photos"] = int(len(chips.paths))
    result["photos_no_face"] = int((~chips.found).sum())
    result["distances"] = d.astype(float).round(6).tolist()
    return result
