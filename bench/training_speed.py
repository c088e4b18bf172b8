"""Training images per second: the extractor's training step alone, and fed by the input pipeline.

    python bench/training_speed.py                 # about 3 minutes on 2 cores
    python bench/training_speed.py --steps 12 --old-pipeline

The step is the recipe's (`models/training/train.py`): the backbone of `models/training/network.py`, batch-hard triplet loss
plus the cosine-margin softmax, AdamW, batches of 32 identities x 4 chips. Chips are random pixels (speed
does not depend on them), 300 identities of 10. Each measurement runs in a process of its own, the dataset
opened before the step is first called, as `models/training/train.py` does; printed after 3 warm-up steps:

- fixed batch: the same batch every step, no input pipeline;
- pipeline: each step reads the next batch of `models.training.input_pipeline.make_dataset`;
- with `--old-pipeline`, also the fixed batch while a `tf.data.Dataset.from_generator` dataset, the way the
  pipeline drew its batches before, is open but never read: that alone slowed the step by a third on this
  project's 2-core machine, which is why the pipeline no longer uses it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per measurement (default 8)")
    ap.add_argument("--old-pipeline", action="store_true",
                    help="also time the fixed batch with a from_generator dataset open")
    ap.add_argument("--mode", choices=["fixed", "pipeline", "old"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode is None:  # each measurement in a fresh process
        print("| training step | images/s |\n| --- | --- |", flush=True)
        for mode in ["fixed", "pipeline"] + (["old"] if args.old_pipeline else []):
            subprocess.run([sys.executable, __file__, "--mode", mode, "--steps", str(args.steps)], check=True)
        return

    from models.training.network import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    from models.training.losses import batch_hard_triplet_loss, cosine_margin_logits
    from models.training.network import build_backbone
    from models.training.input_pipeline import make_dataset

    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (3000, 112, 112, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(300), 10).astype(np.int32)
    model = build_backbone()
    class_weights = tf.Variable(tf.random.normal((128, 300), stddev=0.01))
    opt = keras.optimizers.AdamW(1e-3, weight_decay=5e-4)
    variables = model.trainable_variables + [class_weights]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            logits = cosine_margin_logits(emb, class_weights, y, 30.0, 0.2)
            loss = batch_hard_triplet_loss(emb, y, 0.3) + tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def timed(label: str, batches) -> None:
        for _ in range(3):
            float(step(*next(batches)))
        start = time.perf_counter()
        for _ in range(args.steps):
            float(step(*next(batches)))
        print(f"| {label} | {args.steps * 128 / (time.perf_counter() - start):.1f} |", flush=True)

    x = tf.random.uniform((128, 112, 112, 3), -1.0, 1.0)
    y = tf.constant(np.repeat(np.arange(32), 4).astype(np.int32))

    def fixed():
        while True:
            yield x, y

    def piped(iterator):
        for images, ids, _ in iterator:
            yield images, ids

    if args.mode == "fixed":
        timed("fixed batch", fixed())
    elif args.mode == "pipeline":
        timed("pipeline (`make_dataset`)", piped(iter(make_dataset(chips, labels, 32, 4, seed=1))))
    else:
        old = tf.data.Dataset.from_generator(lambda: iter(range(10 ** 9)),
                                             output_signature=tf.TensorSpec([], tf.int64))
        opened = iter(old)  # open, never read again, while the step runs
        next(opened)
        timed("fixed batch, a from_generator dataset open", fixed())


if __name__ == "__main__":
    main()
