"""Evaluating an extractor: threshold calibration on held-out identities, and LFW View 2 (10 folds).

LFW runs through the full path: detect and align every photo as stored (chip cache), embed, compare.
Photos where MTCNN found no face are embedded from the centre of the photo, where LFW puts the labelled
face, and counted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.chips import ChipSet
from models.datasets import load_lfw_pairs
from models.metrics import best_threshold, tar_at_far, ten_fold, threshold_at_far


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


def calibrate(embeddings: np.ndarray, labels: np.ndarray, max_different: int = 500_000, seed: int = 0) -> dict:
    """Thresholds (cosine distance) on pairs of held-out identities: at FAR 1e-2, at FAR 1e-3, and the
    accuracy-maximising one, with the true-accept rate at each FAR."""
    a, b, same = all_pairs(labels, max_different, seed)
    d = 1.0 - np.sum(embeddings[a] * embeddings[b], axis=1)
    return {
        "pairs_same": int(same.sum()),
        "pairs_different": int((~same).sum()),
        "threshold_far_1e-2": threshold_at_far(d, same, 1e-2),
        "tar_at_far_1e-2": tar_at_far(d, same, 1e-2),
        "threshold_far_1e-3": threshold_at_far(d, same, 1e-3),
        "tar_at_far_1e-3": tar_at_far(d, same, 1e-3),
        "threshold_best_accuracy": best_threshold(d, same),
    }


def evaluate_lfw(extractor, lfw_root: str | Path, chips: ChipSet, progress: bool = True) -> dict:
    """LFW View 2 10-fold numbers for `extractor`, `chips` being the chip cache of the pairs' photos."""
    pairs = load_lfw_pairs(lfw_root)
    row = {p: i for i, p in enumerate(chips.paths)}
    missing = [str(p.a) for p in pairs if str(p.a) not in row] + [str(p.b) for p in pairs if str(p.b) not in row]
    if missing:
        raise ValueError(f"chip cache lacks {len(missing)} LFW photos, e.g. {missing[0]}: rebuild it")
    emb = embed_chipset(extractor, chips, progress=progress)
    a = np.array([row[str(p.a)] for p in pairs])
    b = np.array([row[str(p.b)] for p in pairs])
    d = 1.0 - np.sum(emb[a] * emb[b], axis=1)
    result = ten_fold(d, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]))
    result["photos"] = int(len(chips.paths))
    result["photos_no_face"] = int((~chips.found).sum())
    result["distances"] = d.astype(float).round(6).tolist()
    return result
