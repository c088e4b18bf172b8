"""Verification metrics and losses, with values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from models.training.metrics import (WeightedTar, accuracy_at, best_threshold, eer, identity_bootstrap, roc, roc_auc,
                            tar_at_far, ten_fold, threshold_at_far)
from models.training.generators import PKSampler
from models.training.train import split_identities


def test_best_threshold_separates_a_separable_set():
    d = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    same = np.array([1, 1, 1, 0, 0], bool)
    t = best_threshold(d, same)
    assert 0.3 < t < 0.7 and accuracy_at(d, same, t) == 1.0


def test_best_threshold_on_overlap():
    """Same at .1 .4 .6, different at .3 .5 .9: t in (.1,.3) or (.4,.5) or (.6,.9) gives 4 of 6 right;
    best_threshold takes the first maximum found, here the smallest (0.2)."""
    d = np.array([0.1, 0.4, 0.6, 0.3, 0.5, 0.9])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    t = best_threshold(d, same)
    assert accuracy_at(d, same, t) == pytest.approx(4 / 6)
    assert t == pytest.approx(0.2)


def test_roc_endpoints_and_auc_by_hand():
    """Same at .1 .3, different at .2 .4: of the 4 (same, different) orderings 3 put same closer: AUC 3/4."""
    d = np.array([0.1, 0.3, 0.2, 0.4])
    same = np.array([1, 1, 0, 0], bool)
    far, tar, _ = roc(d, same)
    assert (far[0], tar[0], far[-1], tar[-1]) == (0, 0, 1, 1)
    assert roc_auc(d, same) == pytest.approx(0.75)
    assert eer(d, same) == pytest.approx(0.5)


def test_far_thresholds():
    d = np.concatenate([np.linspace(0, 0.5, 100), np.linspace(0.4, 1.0, 1000)])
    same = np.concatenate([np.ones(100, bool), np.zeros(1000, bool)])
    t = threshold_at_far(d, same, 1e-2)
    assert np.mean(d[~same] < t) <= 1e-2
    assert tar_at_far(d, same, 1e-2) == pytest.approx(np.mean(d[same] < t))


def test_weighted_tar_with_unit_weights_is_tar_at_far():
    rng = np.random.default_rng(3)
    same = rng.random(5000) < 0.2
    d = np.round(np.where(same, rng.normal(0.4, 0.15, same.size), rng.normal(0.8, 0.15, same.size)), 3)  # ties too
    w = WeightedTar(d, same)
    for far in (1e-3, 1e-2, 0.1, 0.5):
        assert w.at(np.ones(d.size), far) == pytest.approx(tar_at_far(d, same, far))


def test_weighted_tar_counts_a_weight_as_that_many_copies():
    """Weights 0, 1, 2 and 3 give what dropping the pair, keeping it, or repeating it twice or thrice gives."""
    rng = np.random.default_rng(4)
    same = rng.random(3000) < 0.3
    d = np.where(same, rng.normal(0.4, 0.2, same.size), rng.normal(0.7, 0.2, same.size))
    weights = rng.integers(0, 4, d.size)
    copies = np.repeat(np.arange(d.size), weights)
    for far in (1e-2, 0.05, 0.2):
        assert WeightedTar(d, same).at(weights, far) == pytest.approx(tar_at_far(d[copies], same[copies], far))


def test_identity_bootstrap_weighs_pairs_by_identity_draws():
    """Identities x, y, z; pairs (x,x), (y,y), (z,z), (x,y), (y,z), (x,z): a different pair weighs the product
    of its identities' draws, a same pair its identity's draws, and the draws add up to the identities."""
    a = np.array(["x", "y", "z", "x", "y", "x"])
    b = np.array(["x", "y", "z", "y", "z", "z"])
    rounds = list(identity_bootstrap(a, b, rounds=50, seed=1))
    assert len(rounds) == 50
    for w in rounds:
        cx, cy, cz = w[:3]
        assert cx + cy + cz == 3
        assert list(w[3:]) == [cx * cy, cy * cz, cx * cz]
    assert len({tuple(w) for w in rounds}) > 1  # not the same draw every round


def test_ten_fold_on_synthetic_folds():
    rng = np.random.default_rng(0)
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    folds = np.repeat(np.arange(10), 600)
    d = np.where(same, rng.normal(0.3, 0.1, same.size), rng.normal(0.8, 0.1, same.size))
    r = ten_fold(d, same, folds)
    assert len(r["fold_accuracies"]) == 10
    assert 0.98 < r["accuracy_mean"] <= 1.0 and r["accuracy_std"] < 0.02
    assert 0.45 < r["threshold_mean"] < 0.65 and r["roc_auc"] > 0.99


def test_batch_hard_triplet_loss_by_hand():
    """Four unit vectors in 2-D at angles 0, 60 (identity A), 90, 180 degrees (identity B), margin 0.3.

    cos distances: d(0,60)=0.5, d(0,90)=1, d(0,180)=2, d(60,90)=1-cos30=0.134, d(60,180)=1.5, d(90,180)=1.
    Anchor 0:   hardest pos 0.5 (60), hardest neg 1.0 (90): 0.5-1.0+0.3 -> 0.
    Anchor 60:  pos 0.5, hardest neg 0.134: 0.5-0.134+0.3 = 0.666.
    Anchor 90:  pos 1.0 (180), hardest neg 0.134 (60): 1.166.
    Anchor 180: pos 1.0, hardest neg 1.5 (60): 1-1.5+0.3 -> 0.
    Mean = (0.666 + 1.166) / 4 = 0.458.
    """
    tf = pytest.importorskip("tensorflow")
    from models.training.losses import batch_hard_triplet_loss

    ang = np.deg2rad([0, 60, 90, 180])
    emb = tf.constant(np.stack([np.cos(ang), np.sin(ang)], 1), tf.float32)
    labels = tf.constant([0, 0, 1, 1])
    c30 = 1 - np.cos(np.deg2rad(30))
    expected = ((0.5 - c30 + 0.3) + (1.0 - c30 + 0.3)) / 4
    assert float(batch_hard_triplet_loss(emb, labels, 0.3)) == pytest.approx(expected, abs=1e-5)


def test_semi_hard_triplet_loss_by_hand():
    """Same four vectors. Pairs (a, p) and the chosen negative:
    (0,60): d_ap .5; negatives farther than .5: 90 (1.0), 180 (2.0) -> 1.0; loss max(0, .5-1+.3) = 0.
    (60,0): d_ap .5; negatives 90 (.134), 180 (1.5); farther: 1.5; loss 0.
    (90,180): d_ap 1; negatives 0 (1.0, not farther), 60 (.134): none farther -> farthest 1.0; loss .3.
    (180,90): d_ap 1; negatives 0 (2.0), 60 (1.5); farther min 1.5; loss 0.
    Mean over 4 pairs = 0.075.
    """
    tf = pytest.importorskip("tensorflow")
    from models.training.losses import semi_hard_triplet_loss

    ang = np.deg2rad([0, 60, 90, 180])
    emb = tf.constant(np.stack([np.cos(ang), np.sin(ang)], 1), tf.float32)
    assert float(semi_hard_triplet_loss(emb, tf.constant([0, 0, 1, 1]), 0.3)) == pytest.approx(0.075, abs=1e-5)


def test_split_identities_is_disjoint_seeded_and_complete():
    ids = [f"id{i}" for i in range(100)]
    a = split_identities(ids, (0.6, 0.2, 0.2), seed=3)
    b = split_identities(ids, (0.6, 0.2, 0.2), seed=3)
    assert a == b and [len(p) for p in a] == [60, 20, 20]
    assert set().union(*map(set, a)) == set(ids)
    assert not (set(a[0]) & set(a[1]) or set(a[0]) & set(a[2]) or set(a[1]) & set(a[2]))


def test_pk_sampler_gives_p_identities_of_k_photos():
    labels = np.repeat(np.arange(20), 5)
    batch = PKSampler(labels, p=8, k=4, seed=0).batch()
    assert len(batch) == 32
    counts = np.bincount(labels[batch], minlength=20)
    assert sorted(counts[counts > 0]) == [4] * 8
