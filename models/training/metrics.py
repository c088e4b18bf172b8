"""Verification metrics on distances: pure functions, arrays in, numbers out.

Convention: a pair is called "same person" when its distance is *below* the threshold (strictly less).
"""
from __future__ import annotations

import numpy as np


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs classified right when `distance < threshold` means same."""
    distances, same = np.asarray(distances), np.asarray(same, bool)
    return float(np.mean((distances < threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy, midway between two neighbouring distances (ties: the smallest)."""
    d = np.sort(np.unique(np.asarray(distances, np.float64)))
    candidates = np.concatenate([[d[0] - 1e-6], (d[:-1] + d[1:]) / 2, [d[-1] + 1e-6]])
    same = np.asarray(same, bool)
    dist = np.asarray(distances, np.float64)
    # accuracy for every candidate at once: sort pairs, count same below and different at/above
    order = np.argsort(dist, kind="stable")
    ds, ss = dist[order], same[order]
    below = np.searchsorted(ds, candidates, side="left")  # pairs with distance < candidate
    same_below = np.concatenate([[0], np.cumsum(ss)])[below]
    diff_total = int((~ss).sum())
    diff_below = below - same_below
    correct = same_below + (diff_total - diff_below)
    return float(candidates[int(np.argmax(correct))])


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds): for each threshold t, the false- and true-accept rates of `distance < t`.

    Thresholds run from below the smallest distance to above the largest, so the curve spans (0,0)..(1,1).
    """
    dist = np.asarray(distances, np.float64)
    same = np.asarray(same, bool)
    d = np.unique(dist)
    thresholds = np.concatenate([[d[0] - 1e-6], (d[:-1] + d[1:]) / 2, [d[-1] + 1e-6]])
    sd, dd = np.sort(dist[same]), np.sort(dist[~same])
    tar = np.searchsorted(sd, thresholds, side="left") / max(len(sd), 1)
    far = np.searchsorted(dd, thresholds, side="left") / max(len(dd), 1)
    return far, tar, thresholds


def threshold_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float:
    """The largest threshold whose false-accept rate is at most `far`."""
    f, _, t = roc(distances, same)
    ok = np.nonzero(f <= far)[0]
    return float(t[ok[-1]])


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float:
    """True-accept rate at the largest threshold whose false-accept rate is at most `far`."""
    f, tar, _ = roc(distances, same)
    ok = np.nonzero(f <= far)[0]
    return float(tar[ok[-1]])


def far_limit(distances: np.ndarray, weights: np.ndarray, far):
    """The threshold that accepts (strictly below it) the longest run of the nearest different-person pairs
    whose weight is at most `far` of all their weight: `distances` sorted ascending, `weights` theirs, `far` one
    rate or an array of them (then one threshold each); inf where every pair may be accepted."""
    cum = np.cumsum(weights)
    k = np.searchsorted(cum, np.asarray(far) * cum[-1] * (1 + 1e-12), side="right")
    return np.where(k < len(distances), distances[np.minimum(k, len(distances) - 1)], np.inf)


class WeightedTar:
    """True-accept rate at a false-accept rate with a weight on each pair, for resampling without sorting again.

    The distances are sorted once; `at(weights, far)` then costs two cumulative sums. With every weight 1 it
    gives what `tar_at_far` gives: the threshold is the largest whose weighted false-accept rate is at most
    `far` (a pair is accepted when strictly below it).
    """

    def __init__(self, distances: np.ndarray, same: np.ndarray):
        dist, same = np.asarray(distances, np.float64), np.asarray(same, bool)
        self._pos = np.flatnonzero(same)[np.argsort(dist[same], kind="stable")]
        self._neg = np.flatnonzero(~same)[np.argsort(dist[~same], kind="stable")]
        self._dpos, self._dneg = dist[self._pos], dist[self._neg]

    def at(self, weights: np.ndarray, far: float) -> float:
        w = np.asarray(weights, np.float64)
        limit = far_limit(self._dneg, w[self._neg], far)
        wpos = w[self._pos]
        return float(wpos[self._dpos < limit].sum() / wpos.sum())


def identity_bootstrap(labels_a: np.ndarray, labels_b: np.ndarray, rounds: int, seed: int = 0):
    """Pair weights for a bootstrap over identities, one array per round: the identities are drawn with
    replacement, and a pair weighs the number of times its first identity was drawn times that of its second
    (a same-identity pair: the number of times its identity was drawn). Photos of one person are not
    independent, so resampling people, not pairs, gives honest intervals."""
    ids, inverse = np.unique(np.concatenate([labels_a, labels_b]), return_inverse=True)
    a, b = inverse[:len(labels_a)], inverse[len(labels_a):]
    same = a == b
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        drawn = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids)).astype(np.float64)
        yield np.where(same, drawn[a], drawn[a] * drawn[b])


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve: chance that a same pair is closer than a different pair (ties count half)."""
    f, t, _ = roc(distances, same)
    return float(np.trapezoid(t, f))


def eer(distances: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where the false-accept rate meets the false-reject rate (interpolated)."""
    f, t, _ = roc(distances, same)
    frr = 1.0 - t
    i = int(np.nonzero(f >= frr)[0][0])
    if i == 0:
        return float(f[0])
    # linear interpolation between points i-1 and i of (far - frr), which changes sign there
    a0, a1 = f[i - 1] - frr[i - 1], f[i] - frr[i]
    w = a0 / (a0 - a1) if a1 != a0 else 0.0
    return float(f[i - 1] + w * (f[i] - f[i - 1]))


def ten_fold(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """The LFW View 2 protocol: for each fold the threshold that maximises accuracy on the other nine,
    accuracy on the held-out fold; mean and standard deviation over folds, plus whole-set ROC numbers."""
    distances, same, folds = np.asarray(distances), np.asarray(same, bool), np.asarray(folds)
    accs, thresholds = [], []
    for k in np.unique(folds):
        test = folds == k
        t = best_threshold(distances[~test], same[~test])
        thresholds.append(t)
        accs.append(accuracy_at(distances[test], same[test], t))
    accs = np.array(accs)
    return {
        "accuracy_mean": float(accs.mean()),
        "accuracy_std": float(accs.std()),
        "fold_accuracies": [float(a) for a in accs],
        "threshold_mean": float(np.mean(thresholds)),
        "roc_auc": roc_auc(distances, same),
        "eer": eer(distances, same),
        "tar_at_far_1e-3": tar_at_far(distances, same, 1e-3),
        "tar_at_far_1e-2": tar_at_far(distances, same, 1e-2),
        "pairs": int(len(distances)),
    }


def bcubed(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """BCubed precision, recall and F1 of a clustering (Bagga and Baldwin, 1998; Amigo et al., 2009).

    `truth` and `predicted` give each item's true identity and its cluster. For an item, precision is the share
    of its cluster that shares its identity and recall the share of its identity that is in its cluster (both
    counting the item itself); each is averaged over items, and F1 is their harmonic mean. A predicted label
    of -1 means "in no cluster": each such item counts as a cluster of its own.
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted, np.int64).copy()
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must label the same items")
    if len(truth) == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "items": 0}
    alone = predicted < 0
    predicted[alone] = predicted.max(initial=0) + 1 + np.arange(int(alone.sum()))
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(predicted, return_inverse=True)
    both = np.zeros((p.max() + 1, t.max() + 1), np.int64)  # items per (cluster, identity)
    np.add.at(both, (p, t), 1)
    shared = both[p, t]  # for each item: items in its cluster with its identity, itself included
    precision = float(np.mean(shared / both.sum(axis=1)[p]))
    recall = float(np.mean(shared / both.sum(axis=0)[t]))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": float(f1), "items": int(len(truth))}


def open_set(known_distances: np.ndarray, known_correct: np.ndarray, unknown_distances: np.ndarray,
             false_alarm: float = 0.01) -> dict:
    """Open-set identification: rank-1 accuracy and the detection-and-identification rate (DIR) at a
    false-alarm rate (the watch-list measure of NIST's face recognition vendor tests).

    `known_distances` is, for each probe whose person is in the gallery, its distance to the nearest gallery
    entry, and `known_correct` whether that entry is its person; `unknown_distances` the same distance for each
    probe whose person is not in the gallery. The threshold is the largest under which at most `false_alarm` of
    the unknown probes fall (a probe is accepted when strictly nearer); DIR is the share of known probes whose
    nearest entry is right *and* nearer than that threshold.
    """
    known = np.asarray(known_distances, np.float64)
    correct = np.asarray(known_correct, bool)
    unknown = np.sort(np.asarray(unknown_distances, np.float64))
    allowed = int(np.floor(false_alarm * len(unknown) + 1e-9))  # unknown probes that may be accepted
    threshold = float(unknown[allowed]) if allowed < len(unknown) else np.inf
    accepted = known < threshold
    return {
        "rank1": float(correct.mean()) if len(correct) else 0.0,
        "dir": float((correct & accepted).mean()) if len(correct) else 0.0,
        "threshold": threshold,
        "false_alarm": float(np.mean(unknown < threshold)) if len(unknown) else 0.0,
        "known_probes": int(len(known)),
        "unknown_probes": int(len(unknown)),
    }


# False-accept rates at which a calibration records its threshold: 1e-1 down to 1e-6, half a decade apart.
FAR_GRID = tuple(float(10.0 ** -(k / 2)) for k in range(2, 13))


def far_curve(distances: np.ndarray, labels_a: np.ndarray, labels_b: np.ndarray, fars=FAR_GRID,
              rounds: int = 200, seed: int = 0) -> dict:
    """The threshold at each false-accept rate of `fars`, from the distances of different-identity pairs
    (`labels_a`, `labels_b`: each pair's two identities), with a 95 % interval from a bootstrap over identities
    (`identity_bootstrap`). A threshold accepts the pairs strictly below it, as `WeightedTar` does. Returns
    lists `far`, `threshold`, `low`, `high`, and the counts behind them; `low` is the cautious end (fewer
    strangers accepted)."""
    order = np.argsort(np.asarray(distances, np.float64), kind="stable")
    d = np.asarray(distances, np.float64)[order]
    la, lb = np.asarray(labels_a)[order], np.asarray(labels_b)[order]
    fars = np.asarray(fars, np.float64)

    point = far_limit(d, np.ones(len(d)), fars)
    # a draw of a single person holds no different-person pair: it says nothing and is left out
    drawn = [far_limit(d, w, fars) for w in identity_bootstrap(la, lb, rounds, seed) if w.sum() > 0]
    rounds_out = np.stack(drawn) if drawn else point[None]
    low, high = point.copy(), point.copy()
    for c in range(len(fars)):
        column = rounds_out[:, c][np.isfinite(rounds_out[:, c])]
        if len(column):
            low[c], high[c] = np.percentile(column, [2.5, 97.5])
    return {"far": fars.tolist(), "threshold": point.tolist(), "low": low.tolist(), "high": high.tolist(),
            "pairs_different": int(len(d)), "identities": int(len(np.unique(np.concatenate([la, lb])))),
            "rounds": int(rounds)}
