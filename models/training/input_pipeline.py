"""The tf.data input pipeline for training: P x K batches of chips, decoded to floats and augmented.

Chips stay in one uint8 numpy array in memory (about 1 GB for the whole training set); the pipeline draws
batch indices from a P x K sampler, gathers the chips, augments them in parallel and prefetches, so that
the training step never waits for input. `measure_pipeline` reports its images/s alone.
"""
from __future__ import annotations

import time

import numpy as np

from models.training.generators import PKSampler


def augment(x):
    """Random flip, up to 6 % scale-and-shift jitter, brightness and contrast jitter, 10 % greyscale.

    x: (n, side, side, 3) float32 in [-1, 1]."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    side = x.shape[1]
    x = tf.where(tf.random.uniform([n, 1, 1, 1]) < 0.5, tf.reverse(x, axis=[2]), x)
    # crop a random box of 94..100 % of the side and resize back: small scale and position jitter
    size = tf.random.uniform([n, 1], 0.94, 1.0)
    y0 = tf.random.uniform([n, 1]) * (1.0 - size)
    x0 = tf.random.uniform([n, 1]) * (1.0 - size)
    boxes = tf.concat([y0, x0, y0 + size, x0 + size], axis=1)
    x = tf.image.crop_and_resize(x, boxes, tf.range(n), [side, side])
    x = x * tf.random.uniform([n, 1, 1, 1], 0.7, 1.3) + tf.random.uniform([n, 1, 1, 1], -0.2, 0.2)
    grey = tf.reduce_mean(x, axis=3, keepdims=True) * tf.ones_like(x)
    x = tf.where(tf.random.uniform([n, 1, 1, 1]) < 0.1, grey, x)
    return tf.clip_by_value(x, -1.0, 1.0)


def make_dataset(chips: np.ndarray, labels: np.ndarray, p: int, k: int, seed: int, augmented: bool = True,
                 targets: np.ndarray | None = None, neighbours: dict | None = None):
    """An endless tf.data.Dataset of (images (P*K, side, side, 3) float32, labels (P*K,) int32, targets) batches;
    targets are the rows of `targets` (e.g. teacher embeddings) for those photos, or (P*K, 1) zeros; with
    `neighbours`, identities come in look-alike pairs (`PKSampler`)."""
    import tensorflow as tf

    sampler = PKSampler(labels, p, k, seed, neighbours=neighbours)
    labels = np.asarray(labels, np.int32)
    targets = np.zeros((len(labels), 1), np.float32) if targets is None else np.asarray(targets, np.float32)
    width = targets.shape[1]
    side = chips.shape[1]

    def draw():
        i = sampler.batch()  # calls hold Python's lock, so the sampler's batches are drawn one at a time
        return chips[i], labels[i], targets[i]

    def gather(_):
        # numpy gather keeps the 1 GB chip array out of the TensorFlow graph
        x, y, t = tf.numpy_function(draw, [], (tf.uint8, tf.int32, tf.float32))
        x = (tf.cast(tf.reshape(x, [p * k, side, side, 3]), tf.float32) - 127.5) / 128.0
        return (augment(x) if augmented else x), tf.reshape(y, [p * k]), tf.reshape(t, [p * k, width])

    # Not Dataset.from_generator: with such a dataset open, the training step ran at 28 images/s instead of
    # 39 on this project's 2-core machine, even while the step did not read from it (bench/training_speed.py)
    ds = tf.data.Dataset.from_tensors(0).repeat()
    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).prefetch(2)


def measure_pipeline(dataset, batches: int = 20) -> float:
    """Images per second the pipeline delivers on its own (after one warm-up batch)."""
    it = iter(dataset)
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += int(next(it)[0].shape[0])
    return n / (time.perf_counter() - start)
