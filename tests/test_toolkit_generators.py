"""Pairs, triplets, P x K batches and in-batch mining on seeded synthetic labels; the numpy miners agree with
the TF losses of models.training.losses."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

import models.training.generators
from models.distance import cosine_distances
from models.training.generators import (PKSampler, batch_hard_triplets, make_pairs, make_triplets,
                               pair_capacity, semi_hard_triplets, triplet_capacity, triplet_losses)


def random_labels(seed: int) -> np.ndarray:
    """Seeded labels of varied shape: 2..40 identities of 1..12 photos each, shuffled, with gaps in the ids."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 13, size=rng.integers(2, 41))
    labels = np.repeat(rng.permutation(1000)[: len(sizes)] * 3, sizes)
    return rng.permutation(labels)


def check_pairs(labels: np.ndarray, pairs: np.ndarray, same: np.ndarray, count: int) -> None:
    assert pairs.shape == (count, 2) and same.shape == (count,) and same.dtype == bool
    assert same.sum() == count // 2  # exactly half same
    assert (pairs[:, 0] < pairs[:, 1]).all()  # canonical, so never i == j and never (i, j) next to (j, i)
    assert len({tuple(p) for p in pairs.tolist()}) == count  # no pair twice
    np.testing.assert_array_equal(labels[pairs[:, 0]] == labels[pairs[:, 1]], same)
    assert pairs.min() >= 0 and pairs.max() < len(labels)


def test_docstring_examples():
    assert doctest.testmod(models.training.generators).failed == 0


def test_pairs_are_balanced_distinct_and_labelled_right_on_many_label_sets():
    for seed in range(30):
        labels = random_labels(seed)
        same_cap, diff_cap = pair_capacity(labels)
        count = 2 * min(same_cap, diff_cap, 300)
        pairs, same = make_pairs(labels, count, seed=seed)
        check_pairs(labels, pairs, same, count)


def test_pairs_can_take_every_pair_there_is_and_no_more():
    labels = np.array([0, 0, 0, 1, 1, 2])  # same: 3 + 1 = 4 pairs
    pairs, same = make_pairs(labels, 8, seed=1)
    check_pairs(labels, pairs, same, 8)
    assert {tuple(p) for p in pairs[same].tolist()} == {(0, 1), (0, 2), (1, 2), (3, 4)}
    with pytest.raises(ValueError, match="give only 4 and 11. Ask for at most 8 pairs"):
        make_pairs(labels, 10, seed=1)
    with pytest.raises(ValueError, match="even"):
        make_pairs(labels, 3, seed=1)
    with pytest.raises(ValueError, match="give only 0 and"):
        make_pairs([0, 1, 2, 3], 2, seed=1)  # one photo per identity: no same pair at all


def test_pairs_are_seeded():
    labels = random_labels(7)
    a = make_pairs(labels, 100, seed=3)
    b = make_pairs(labels, 100, seed=3)
    c = make_pairs(labels, 100, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert 0.2 < a[1][:50].mean() < 0.8  # same and different pairs are shuffled together, not in two blocks


def test_pairs_from_large_label_sets_drawn_without_listing_them():
    # 100 identities x 70 photos: 241,500 same pairs and 24 million different ones, past the listing limit
    labels = np.repeat(np.arange(100), 70)
    pairs, same = make_pairs(labels, 20_000, seed=0)
    check_pairs(labels, pairs, same, 20_000)
    # uniform over pairs: an identity with 3x the photos gives about (3*70 choose 2) / (70 choose 2) ~ 9x
    labels = np.concatenate([np.repeat(np.arange(50), 70), np.repeat(50, 210)])
    pairs, same = make_pairs(labels, 40_000, seed=0)
    check_pairs(labels, pairs, same, 40_000)
    big = (labels[pairs[same, 0]] == 50).mean()
    expected = 210 * 209 / (210 * 209 + 50 * 70 * 69)
    assert abs(big - expected) < 0.01


def test_string_labels_work():
    labels = np.array(["ann", "bob", "ann", "cy", "bob", "ann"])
    pairs, same = make_pairs(labels, 8, seed=0)
    check_pairs(labels, pairs, same, 8)


def check_triplets(labels: np.ndarray, triplets: np.ndarray, count: int) -> None:
    assert triplets.shape == (count, 3)
    a, p, n = triplets.T
    assert (a != p).all() and (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all()
    assert len({tuple(t) for t in triplets.tolist()}) == count


def test_triplets_on_many_label_sets_both_small_and_large():
    for seed in range(30):
        labels = random_labels(seed)
        count = min(triplet_capacity(labels), 500)
        triplets = make_triplets(labels, count, seed=seed)
        check_triplets(labels, triplets, count)
        np.testing.assert_array_equal(triplets, make_triplets(labels, count, seed=seed))
    labels = np.repeat(np.arange(300), 8)  # 40 million triplets: drawn, not listed
    check_triplets(labels, make_triplets(labels, 20_000, seed=5), 20_000)


def test_triplets_beyond_capacity_are_refused():
    labels = np.array([0, 0, 1])
    assert triplet_capacity(labels) == 2
    check_triplets(labels, make_triplets(labels, 2, seed=0), 2)
    with pytest.raises(ValueError, match="give only 2 distinct"):
        make_triplets(labels, 3, seed=0)
    with pytest.raises(ValueError, match="give only 0 distinct"):
        make_triplets([0, 0, 0], 1, seed=0)  # no other identity: no negative


def test_pk_sampler_batches():
    labels = np.concatenate([np.repeat(np.arange(20), 5), [20, 21]])  # identities 20 and 21: one photo each
    sampler = PKSampler(labels, p=8, k=4, seed=0)
    for _, batch in zip(range(20), sampler):
        assert batch.shape == (32,)
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(ids) == 8 and (counts == 4).all() and ids.max() < 20
    small = PKSampler(np.repeat(np.arange(4), 2), p=2, k=3, seed=0).batch()  # K > photos: drawn with replacement
    assert np.unique(np.repeat(np.arange(4), 2)[small], return_counts=True)[1].tolist() == [3, 3]
    with pytest.raises(ValueError, match="needs 8 identities with two or more photos; the labels have 4"):
        PKSampler(np.repeat(np.arange(4), 2), p=8, k=2, seed=0)


def pk_batch(seed: int, p: int = 6, k: int = 4, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(p * k, dim)).astype(np.float32)
    labels = np.repeat(rng.permutation(p), k)
    # pull photos of one identity together a little, so positives and negatives overlap in distance
    centres = rng.normal(size=(p, dim)).astype(np.float32)
    emb = emb + 1.5 * centres[labels]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    order = rng.permutation(p * k)
    return emb[order], labels[order]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("margin", [0.1, 0.3, 1.0])
def test_mined_triplets_give_the_tf_losses(seed, margin):
    import tensorflow as tf

    from models.training.losses import batch_hard_triplet_loss, pairwise_cosine_distance, semi_hard_triplet_loss

    emb, labels = pk_batch(seed)
    d = pairwise_cosine_distance(tf.constant(emb)).numpy()
    hard = batch_hard_triplets(d, labels)
    semi = semi_hard_triplets(d, labels)
    assert len(hard) == len(labels)  # every anchor has a positive and a negative in a P x K batch
    assert len(semi) == len(labels) * 3  # K - 1 positives per anchor
    tf_hard = float(batch_hard_triplet_loss(tf.constant(emb), tf.constant(labels), margin=margin))
    tf_semi = float(semi_hard_triplet_loss(tf.constant(emb), tf.constant(labels), margin=margin))
    assert triplet_losses(d, hard, margin).mean() == pytest.approx(tf_hard, abs=1e-6)
    assert triplet_losses(d, semi, margin).mean() == pytest.approx(tf_semi, abs=1e-6)
    # the same from numpy's own distances (float rounding may only move near-ties)
    d_np = cosine_distances(emb.astype(np.float64), emb.astype(np.float64))
    assert triplet_losses(d_np, batch_hard_triplets(d_np, labels), margin).mean() == pytest.approx(tf_hard, abs=1e-5)
    assert triplet_losses(d_np, semi_hard_triplets(d_np, labels), margin).mean() == pytest.approx(tf_semi, abs=1e-5)


def test_mined_triplets_are_what_their_names_say():
    for seed in range(10):
        emb, labels = pk_batch(seed, p=5, k=3)
        d = cosine_distances(emb, emb)
        for a, p, n in batch_hard_triplets(d, labels):
            pos = (labels == labels[a]) & (np.arange(len(labels)) != a)
            neg = labels != labels[a]
            assert pos[p] and neg[n] and d[a, p] == d[a, pos].max() and d[a, n] == d[a, neg].min()
        for a, p, n in semi_hard_triplets(d, labels):
            neg = labels != labels[a]
            farther = neg & (d[a] > d[a, p])
            assert labels[p] == labels[a] and a != p and neg[n]
            assert d[a, n] == (d[a, farther].min() if farther.any() else d[a, neg].max())


def test_mining_skips_anchors_without_positive_or_negative():
    d = np.array([[0, .5, .2], [.5, 0, .9], [.2, .9, 0]])
    assert batch_hard_triplets(d, [0, 0, 1]).tolist() == [[0, 1, 2], [1, 0, 2]]
    assert batch_hard_triplets(d, [0, 0, 0]).shape == (0, 3)
    assert semi_hard_triplets(d, [0, 1, 2]).shape == (0, 3)
    with pytest.raises(ValueError, match=r"distances must be \(n, n\) for n = 2"):
        batch_hard_triplets(d, [0, 1])


def test_look_alike_batches_pair_identities_with_their_neighbours():
    """With `neighbours`, each identity drawn at random brings one of its nearest: nearly every pair of a batch
    is a look-alike pair (a neighbour already drawn breaks a pair), against 5 % of pairs without them."""
    labels = np.repeat(np.arange(40), 4)
    neighbours = {c: [(c + 1) % 40, (c + 2) % 40] for c in range(40)}

    def paired(sampler) -> float:
        hits = []
        for _ in range(200):
            ids = labels[sampler.batch()][::4]
            assert len(set(ids.tolist())) == 8 and len(ids) == 8
            hits += [int(b in neighbours[a]) for a, b in zip(ids[::2], ids[1::2])]
        return float(np.mean(hits))

    assert paired(PKSampler(labels, 8, 4, seed=0, neighbours=neighbours)) > 0.9
    assert paired(PKSampler(labels, 8, 4, seed=0)) < 0.15
