"""Metric-learning losses on L2-normalised embeddings, with cosine distance d(a, b) = 1 - a.b.

Each loss is a plain function of (embeddings, labels) for one batch; mining happens inside the batch.
"""
from __future__ import annotations


def pairwise_cosine_distance(emb):
    """(n, n) matrix of 1 - e_i.e_j for unit rows of `emb`."""
    import tensorflow as tf

    return 1.0 - tf.matmul(emb, emb, transpose_b=True)


def batch_hard_triplet_loss(emb, labels, margin: float = 0.3):
    """Mean over anchors of max(0, d(a, hardest positive) - d(a, hardest negative) + margin).

    For each anchor the hardest positive is the farthest photo of the same identity in the batch and the
    hardest negative the closest photo of another identity. Anchors without a positive are skipped.
    """
    import tensorflow as tf

    d = pairwise_cosine_distance(emb)
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    eye = tf.eye(tf.shape(labels)[0], dtype=tf.bool)
    pos_mask = tf.logical_and(same, tf.logical_not(eye))
    neg_mask = tf.logical_not(same)
    hardest_pos = tf.reduce_max(tf.where(pos_mask, d, tf.fill(tf.shape(d), -1.0)), axis=1)
    hardest_neg = tf.reduce_min(tf.where(neg_mask, d, tf.fill(tf.shape(d), 4.0)), axis=1)
    valid = tf.logical_and(tf.reduce_any(pos_mask, axis=1), tf.reduce_any(neg_mask, axis=1))
    losses = tf.nn.relu(hardest_pos - hardest_neg + margin)
    return tf.reduce_sum(tf.where(valid, losses, 0.0)) / tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32)), 1.0)


def semi_hard_triplet_loss(emb, labels, margin: float = 0.3):
    """Mean over (anchor, positive) pairs of max(0, d(a, p) - d(a, n) + margin), where n is the closest
    negative farther than the positive (semi-hard); where none is farther, the farthest negative."""
    import tensorflow as tf

    d = pairwise_cosine_distance(emb)
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    eye = tf.eye(tf.shape(labels)[0], dtype=tf.bool)
    pos_mask = tf.logical_and(same, tf.logical_not(eye))  # (a, p)
    neg_mask = tf.logical_not(same)  # (a, n)
    d_ap = d[:, :, None]  # (a, p, 1)
    d_an = d[:, None, :]  # (a, 1, n)
    farther = tf.logical_and(neg_mask[:, None, :], d_an > d_ap)  # (a, p, n)
    semi = tf.reduce_min(tf.where(farther, tf.broadcast_to(d_an, tf.shape(farther)), 4.0), axis=2)
    far_neg = tf.reduce_max(tf.where(neg_mask, d, -1.0), axis=1)[:, None]
    chosen = tf.where(tf.reduce_any(farther, axis=2), semi, tf.broadcast_to(far_neg, tf.shape(semi)))
    losses = tf.nn.relu(d - chosen + margin)
    mask = tf.cast(pos_mask, tf.float32)
    return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def cosine_margin_logits(emb, class_weights, labels, scale: float = 30.0, margin: float = 0.2):
    """Logits of an additive-cosine-margin softmax: scale * (cos - margin on the true class).

    `class_weights` is (dim, classes); its columns are normalised here, so the logits are scaled cosines.
    """
    import tensorflow as tf

    w = tf.math.l2_normalize(class_weights, axis=0)
    cos = tf.matmul(emb, w)
    onehot = tf.one_hot(tf.reshape(labels, [-1]), tf.shape(w)[1])
    return scale * (cos - margin * onehot)


def contrastive_loss(emb, labels, margin: float = 0.5):
    """Contrastive loss over every pair of the batch, on cosine distance d:
    same pairs pay d^2, different pairs pay max(0, margin - d)^2; the two means are added, so the many
    different pairs of a P x K batch do not drown the few same ones."""
    import tensorflow as tf

    d = pairwise_cosine_distance(emb)
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    upper = tf.linalg.band_part(tf.ones_like(d), 0, -1) - tf.linalg.band_part(tf.ones_like(d), 0, 0)  # i < j
    same_f = tf.cast(same, tf.float32) * upper
    diff_f = (1.0 - tf.cast(same, tf.float32)) * upper
    pos = tf.reduce_sum(same_f * tf.square(d)) / tf.maximum(tf.reduce_sum(same_f), 1.0)
    neg = tf.reduce_sum(diff_f * tf.square(tf.nn.relu(margin - d))) / tf.maximum(tf.reduce_sum(diff_f), 1.0)
    return pos + neg


def pair_features(emb_a, emb_b):
    """What the pair classifier sees of two embeddings: |a - b| and a * b, concatenated."""
    import tensorflow as tf

    return tf.concat([tf.abs(emb_a - emb_b), emb_a * emb_b], axis=-1)


def pair_classifier_loss(emb, labels, head, max_pairs: int = 512):
    """Binary cross-entropy of `head` (pair features -> one logit, same = 1) on balanced pairs of the batch:
    every same pair (i < j) and as many different pairs drawn at random. Random, not hardest: a head that
    only ever sees look-alike negatives learns to call ordinary different pairs "same"."""
    import tensorflow as tf

    labels = tf.reshape(labels, [-1])
    n = tf.shape(labels)[0]
    same = tf.equal(labels[:, None], labels[None, :])
    ii, jj = tf.meshgrid(tf.range(n), tf.range(n), indexing="ij")
    upper = ii < jj
    pos = tf.where(tf.logical_and(same, upper))
    neg = tf.where(tf.logical_and(tf.logical_not(same), upper))
    k = tf.minimum(tf.shape(pos)[0], tf.shape(neg)[0])
    neg = tf.random.shuffle(neg)[:k]
    pairs = tf.concat([pos, neg], axis=0)[:max_pairs]
    y = tf.concat([tf.ones([tf.shape(pos)[0]]), tf.zeros([k])], axis=0)[:max_pairs]
    logits = tf.reshape(head(pair_features(tf.gather(emb, pairs[:, 0]), tf.gather(emb, pairs[:, 1]))), [-1])
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))


def distill_position_loss(emb, teacher):
    """Mean of 1 - cos(student, teacher) over the batch: each embedding pulled onto its teacher's unit vector."""
    import tensorflow as tf

    return tf.reduce_mean(1.0 - tf.reduce_sum(emb * teacher, axis=1))


def distill_relation_loss(emb, teacher):
    """Mean squared difference between the student's and the teacher's cosine similarities over every pair
    (i != j) of the batch. Only the geometry between faces is taught, not where they sit, so a student
    that cannot match the teacher exactly has no shared mean direction to fall back on."""
    import tensorflow as tf

    s = tf.matmul(emb, emb, transpose_b=True)
    t = tf.matmul(teacher, teacher, transpose_b=True)
    off = 1.0 - tf.eye(tf.shape(emb)[0])
    return tf.reduce_sum(tf.square(s - t) * off) / tf.maximum(tf.reduce_sum(off), 1.0)
