"""Training and evaluation samples drawn from identity labels: pairs, triplets, P x K batches, and the
triplets a triplet loss mines inside one batch.

Everything here is numpy over integer indices into a list of photos (a `Dataset`'s `labels`, a chip cache);
nothing reads files. Samplers take a `seed` and give the same answer for the same seed.

Distances are cosine distances on L2-normalised embeddings, d(a, b) = 1 - a.b (0 = same direction, 2 =
opposite), the one distance of `models.training.losses`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


# Below this many candidates a sampler lists them all and draws without replacement; above it, it draws at
# random and drops repeats (listing them would take too much memory, and repeats are then rare).
_ENUMERATE_UP_TO = 200_000


def _groups(labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo indices sorted by identity, each identity's start in that order, and its photo count.

    Any labels that numpy can sort (ints, strings) will do; identities are taken in sorted order."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one label per photo (1-D), got shape {labels.shape}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return order.astype(np.int64), starts, counts.astype(np.int64)


def pair_capacity(labels) -> tuple[int, int]:
    """How many distinct unordered pairs the labels give: (same identity, different identities).

    >>> pair_capacity([0, 0, 0, 1, 1])   # same: 3 of identity 0 + 1 of identity 1; different: 3 x 2
    (4, 6)
    """
    _, _, counts = _groups(labels)
    n = int(counts.sum())
    same = int((counts * (counts - 1) // 2).sum())
    return same, n * (n - 1) // 2 - same


def triplet_capacity(labels) -> int:
    """How many distinct (anchor, positive, negative) triplets the labels give: for each identity of c photos,
    c (c - 1) ordered anchor-positive pairs times the photos of other identities.

    >>> triplet_capacity([0, 0, 0, 1, 1])   # 3*2*2 + 2*1*3
    18
    """
    _, _, counts = _groups(labels)
    n = int(counts.sum())
    return int((counts * (counts - 1) * (n - counts)).sum())


def _draw_distinct(rng: np.random.Generator, need: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """`need` distinct int64 keys from repeated calls of `draw(batch)`, kept in the order first drawn."""
    chosen = np.empty(0, np.int64)
    while len(chosen) < need:
        keys = np.concatenate([chosen, draw(max(2 * (need - len(chosen)), 1024))])
        _, first = np.unique(keys, return_index=True)
        chosen = keys[np.sort(first)][:need]  # chosen keys come first in `keys`, so they all stay, in order
    return chosen


def _same_pairs(rng: np.random.Generator, order, starts, counts, need: int, capacity: int) -> np.ndarray:
    """`need` distinct unordered same-identity pairs (i < j), uniform over all such pairs."""
    n = len(order)
    if capacity <= _ENUMERATE_UP_TO:
        parts = []
        for s, c in zip(starts, counts):
            a, b = np.triu_indices(int(c), 1)
            parts.append(np.stack([order[s + a], order[s + b]], axis=1))
        every = np.concatenate(parts) if parts else np.empty((0, 2), np.int64)
        picked = every[rng.choice(len(every), size=need, replace=False)]
        return np.sort(picked, axis=1)
    weights = counts * (counts - 1) / 2.0

    def draw(size: int) -> np.ndarray:
        cls = rng.choice(len(counts), size=size, p=weights / weights.sum())
        c = counts[cls]
        i = rng.integers(0, c)
        j = (i + 1 + rng.integers(0, c - 1)) % c  # any other photo of the identity
        a, b = order[starts[cls] + i], order[starts[cls] + j]
        return np.minimum(a, b) * n + np.maximum(a, b)

    keys = _draw_distinct(rng, need, draw)
    return np.stack([keys // n, keys % n], axis=1)


def _different_pairs(rng: np.random.Generator, order, starts, counts, need: int, capacity: int) -> np.ndarray:
    """`need` distinct unordered pairs of different identities (i < j), uniform over all such pairs."""
    n = len(order)
    if capacity <= _ENUMERATE_UP_TO:
        parts = []
        for s, c in zip(starts, counts):
            mine, later = order[s:s + c], order[s + c:]
            a, b = np.meshgrid(mine, later, indexing="ij")
            parts.append(np.stack([a.ravel(), b.ravel()], axis=1))
        every = np.concatenate(parts) if parts else np.empty((0, 2), np.int64)
        picked = every[rng.choice(len(every), size=need, replace=False)]
        return np.sort(picked, axis=1)
    weights = (counts * (n - counts)).astype(np.float64)

    def draw(size: int) -> np.ndarray:
        cls = rng.choice(len(counts), size=size, p=weights / weights.sum())
        a = order[starts[cls] + rng.integers(0, counts[cls])]
        r = rng.integers(0, n - counts[cls])  # position among the photos of all other identities
        b = order[np.where(r < starts[cls], r, r + counts[cls])]
        return np.minimum(a, b) * n + np.maximum(a, b)

    keys = _draw_distinct(rng, need, draw)
    return np.stack([keys // n, keys % n], axis=1)


def make_pairs(labels, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct photo pairs, half of one identity and half of two, in a seeded random order.

    Returns `(pairs, same)`: pairs (count, 2) int64 indices into `labels` with i < j in each row (so (i, j) and
    (j, i) are one pair, and i == j never occurs), and same (count,) bool. Each half is drawn uniformly from
    all distinct pairs of its kind. Raises ValueError when `count` is odd or the labels do not hold
    count / 2 distinct pairs of a kind.

    >>> pairs, same = make_pairs([0, 0, 1, 1], count=4, seed=0)
    >>> sorted(map(tuple, pairs[same].tolist()))       # the only two same-identity pairs there are
    [(0, 1), (2, 3)]
    >>> int(same.sum()), len({tuple(p) for p in pairs.tolist()})
    (2, 4)
    """
    if count < 0 or count % 2:
        raise ValueError(f"count must be even and non-negative (half same, half different), got {count}")
    order, starts, counts = _groups(labels)
    same_cap, diff_cap = pair_capacity(labels)
    half = count // 2
    if half > same_cap or half > diff_cap:
        raise ValueError(f"{count} pairs need {half} distinct same-identity and {half} different-identity pairs; "
                         f"these {len(order)} photos of {len(counts)} identities give only {same_cap} and "
                         f"{diff_cap}. Ask for at most {2 * min(same_cap, diff_cap)} pairs.")
    rng = np.random.default_rng(seed)
    same_pairs = _same_pairs(rng, order, starts, counts, half, same_cap)
    diff_pairs = _different_pairs(rng, order, starts, counts, half, diff_cap)
    pairs = np.concatenate([same_pairs, diff_pairs]).astype(np.int64).reshape(-1, 2)
    same = np.concatenate([np.ones(half, bool), np.zeros(half, bool)])
    shuffle = rng.permutation(count)
    return pairs[shuffle], same[shuffle]


def make_triplets(labels, count: int, seed: int) -> np.ndarray:
    """`count` distinct (anchor, positive, negative) triplets of photo indices, seeded.

    The positive is another photo of the anchor's identity (never the anchor itself), the negative a photo
    of another identity. Drawn uniformly from all such triplets. Returns (count, 3) int64. Raises ValueError
    when the labels do not hold that many distinct triplets (see `triplet_capacity`).

    >>> make_triplets([0, 0, 1], count=2, seed=0).tolist() in ([[0, 1, 2], [1, 0, 2]], [[1, 0, 2], [0, 1, 2]])
    True
    """
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    order, starts, counts = _groups(labels)
    n = len(order)
    capacity = triplet_capacity(labels)
    if count > capacity:
        raise ValueError(f"{count} triplets asked for, but these {n} photos of {len(counts)} identities give only "
                         f"{capacity} distinct ones (an identity needs two photos to give an anchor and a positive, "
                         "and another identity to give a negative)")
    rng = np.random.default_rng(seed)
    if capacity <= _ENUMERATE_UP_TO:
        parts = []
        for s, c in zip(starts, counts):
            mine = order[s:s + c]
            others = np.concatenate([order[:s], order[s + c:]])
            a, p, neg = np.meshgrid(mine, mine, others, indexing="ij")
            keep = (a != p).ravel()
            parts.append(np.stack([a.ravel()[keep], p.ravel()[keep], neg.ravel()[keep]], axis=1))
        every = np.concatenate(parts) if parts else np.empty((0, 3), np.int64)
        return every[rng.choice(len(every), size=count, replace=False)].astype(np.int64).reshape(-1, 3)
    weights = (counts * (counts - 1) * (n - counts)).astype(np.float64)

    def draw(size: int) -> np.ndarray:
        cls = rng.choice(len(counts), size=size, p=weights / weights.sum())
        c = counts[cls]
        i = rng.integers(0, c)
        j = (i + 1 + rng.integers(0, c - 1)) % c
        r = rng.integers(0, n - c)
        neg = order[np.where(r < starts[cls], r, r + c)]
        return (order[starts[cls] + i] * n + order[starts[cls] + j]) * n + neg

    keys = _draw_distinct(rng, count, draw)
    return np.stack([keys // (n * n), keys // n % n, keys % n], axis=1)


class PKSampler:
    """Batches of P identities x K photos: P distinct identities drawn from those with two or more photos,
    then K of each one's photos (drawn with replacement when it has fewer than K). Seeded: the same labels,
    P, K and seed give the same batches.

    With `neighbours` (for each label, the labels of the identities that look most like it, nearest first, e.g.
    from a network's mean embeddings over the whole training set), identities come in look-alike pairs: each
    identity drawn at random brings one of its `near` nearest neighbours, so that the hardest negatives of a
    batch are hard ones of the whole training set, not only of 32 random people.

    >>> PKSampler([0, 0, 1, 1, 1, 2], p=2, k=3, seed=0).batch().shape   # identity 2 has one photo: never drawn
    (6,)
    """

    def __init__(self, labels, p: int, k: int, seed: int, neighbours: dict | None = None, near: int = 5):
        labels = np.asarray(labels)
        if p < 1 or k < 1:
            raise ValueError(f"P and K must be at least 1, got P={p}, K={k}")
        self.p, self.k = p, k
        self.rng = np.random.default_rng(seed)
        kept = [(c, np.nonzero(labels == c)[0]) for c in np.unique(labels)]
        kept = [(c, ix) for c, ix in kept if len(ix) >= 2]
        self.by_label = [ix for _, ix in kept]
        if len(self.by_label) < p:
            raise ValueError(f"a batch needs {p} identities with two or more photos; the labels have "
                             f"{len(self.by_label)}")
        self.neighbours = None
        if neighbours is not None:
            position = {c: i for i, (c, _) in enumerate(kept)}
            self.neighbours = [[position[n] for n in neighbours.get(c, ()) if n in position][:near] for c, _ in kept]

    def _identities(self) -> np.ndarray:
        """Positions in `by_label` of the next batch's P identities."""
        if self.neighbours is None:
            return self.rng.choice(len(self.by_label), size=self.p, replace=False)
        chosen: list[int] = []
        for first in self.rng.permutation(len(self.by_label)):
            if len(chosen) == self.p:
                break
            if first in chosen:
                continue
            chosen.append(int(first))
            twins = [n for n in self.neighbours[first] if n not in chosen]
            if twins and len(chosen) < self.p:
                chosen.append(int(self.rng.choice(twins)))
        return np.array(chosen)

    def batch(self) -> np.ndarray:
        """The photo indices of the next batch, (P * K,) int64, identity by identity."""
        chosen = self._identities()
        out = []
        for c in chosen:
            ix = self.by_label[c]
            out.append(self.rng.choice(ix, size=self.k, replace=len(ix) < self.k))
        return np.concatenate(out)

    def __iter__(self):
        """Batches without end."""
        while True:
            yield self.batch()


def _masks(distances: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(distances)
    labels = np.asarray(labels).reshape(-1)
    if d.ndim != 2 or d.shape != (len(labels), len(labels)):
        raise ValueError(f"distances must be (n, n) for n = {len(labels)} labels, got {d.shape}")
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    return d, positive, ~same


def batch_hard_triplets(distances: np.ndarray, labels) -> np.ndarray:
    """Batch-hard mining: for each anchor, its farthest positive and its closest negative in the batch.

    Returns (m, 3) int64 rows (anchor, positive, negative), one per anchor that has both a positive and a
    negative, in anchor order; ties go to the lowest index. These are the triplets of
    `models.training.losses.batch_hard_triplet_loss`: the mean of `triplet_losses` over them equals that loss.

    Worked example: photos 0, 1 of identity A and 2 of B, with d(0,1) = 0.5, d(0,2) = 0.2, d(1,2) = 0.9.
    Anchor 0: positive 1, negative 2. Anchor 1: positive 0, negative 2. Anchor 2 has no positive.

    >>> d = np.array([[0, .5, .2], [.5, 0, .9], [.2, .9, 0]])
    >>> batch_hard_triplets(d, [0, 0, 1]).tolist()
    [[0, 1, 2], [1, 0, 2]]
    """
    d, positive, negative = _masks(distances, labels)
    valid = positive.any(1) & negative.any(1)
    hardest_pos = np.argmax(np.where(positive, d, -np.inf), axis=1)
    hardest_neg = np.argmin(np.where(negative, d, np.inf), axis=1)
    anchors = np.nonzero(valid)[0]
    return np.stack([anchors, hardest_pos[anchors], hardest_neg[anchors]], axis=1).astype(np.int64).reshape(-1, 3)


def semi_hard_triplets(distances: np.ndarray, labels) -> np.ndarray:
    """Semi-hard mining: for each (anchor, positive) pair of the batch, the closest negative farther from the
    anchor than the positive; where no negative is farther, the farthest negative.

    Returns (m, 3) int64 rows (anchor, positive, negative), in (anchor, positive) order, one per ordered pair
    of two photos of one identity whose anchor has a negative in the batch; ties go to the lowest index.
    These are the triplets of `models.training.losses.semi_hard_triplet_loss`: the mean of `triplet_losses` over them
    equals that loss. (An anchor with no negative at all gives no triplet here; the TF loss would still count
    its pairs, against a stand-in distance of -1. A P x K batch with P >= 2 never has such an anchor.)

    Worked example: photos 0, 1 of A and 2, 3 of B; d(0,1) = 0.4, d(0,2) = 0.3, d(0,3) = 0.6,
    d(1,2) = 0.8, d(1,3) = 0.9, d(2,3) = 0.5.
    (0,1): negatives 2 (0.3, nearer than 0.4) and 3 (0.6, farther) -> 3 is semi-hard.
    (1,0): negatives 2 (0.8) and 3 (0.9), both farther than 0.4 -> the closer, 2.
    (2,3): d = 0.5; negatives 0 (0.3) and 1 (0.8) -> 1.  (3,2): d = 0.5; 0 (0.6), 1 (0.9) -> 0.

    >>> d = np.array([[0, .4, .3, .6], [.4, 0, .8, .9], [.3, .8, 0, .5], [.6, .9, .5, 0]])
    >>> semi_hard_triplets(d, [0, 0, 1, 1]).tolist()
    [[0, 1, 3], [1, 0, 2], [2, 3, 1], [3, 2, 0]]
    """
    d, positive, negative = _masks(distances, labels)
    anchors, positives = np.nonzero(positive & negative.any(1)[:, None])
    d_ap = d[anchors, positives][:, None]  # (m, 1)
    d_an = d[anchors]  # (m, n)
    neg = negative[anchors]
    farther = neg & (d_an > d_ap)
    semi = np.argmin(np.where(farther, d_an, np.inf), axis=1)
    farthest = np.argmax(np.where(neg, d_an, -np.inf), axis=1)
    chosen = np.where(farther.any(1), semi, farthest)
    return np.stack([anchors, positives, chosen], axis=1).astype(np.int64).reshape(-1, 3)


def triplet_losses(distances: np.ndarray, triplets: np.ndarray, margin: float = 0.3) -> np.ndarray:
    """max(0, d(a, p) - d(a, n) + margin) for each (a, p, n) row of `triplets`; distances and margin in the
    units of `distances` (cosine distance in this project).

    >>> d = np.array([[0, .5, .2], [.5, 0, .9], [.2, .9, 0]])
    >>> triplet_losses(d, np.array([[0, 1, 2], [1, 0, 2]]), margin=0.3).round(3).tolist()   # .5-.2+.3, .5-.9+.3
    [0.6, 0.0]
    """
    d = np.asarray(distances)
    t = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
    return np.maximum(0.0, d[t[:, 0], t[:, 1]] - d[t[:, 0], t[:, 2]] + margin)
