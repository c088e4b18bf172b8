"""Training the triplet-loss extractor on a chip cache, resumable after a kill.

Objective: batch-hard triplet loss on cosine distance, mined inside P identities x K photos batches, plus an
additive-cosine-margin softmax over the training identities that speeds up the first epochs on a CPU.
Everything a run produces lives in its run folder: `split.csv`, `history.csv`, checkpoints under `ckpt/`,
and, at the end, `extractor.keras` with its `extractor.json`.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.chips import ChipSet, load_cache


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of one training run; saved in the run folder and in the model card."""

    chips: str  # chip cache folder (see models/chips.py)
    run: str  # run folder: checkpoints, history, exported model
    steps: int = 2000
    identities_per_batch: int = 32  # P
    photos_per_identity: int = 4  # K
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 150
    triplet_margin: float = 0.3
    triplet_weight: float = 1.0
    softmax_weight: float = 1.0
    softmax_scale: float = 30.0
    softmax_margin: float = 0.2
    dim: int = 128
    val_share: float = 0.1  # identities held out for validation and threshold calibration
    seed: int = 1
    checkpoint_every: int = 250
    max_hours: float = 0.0  # stop (checkpointed, resumable) after this much wall time in this process; 0 = no limit


def split_identities(identities: list[str], shares: tuple[float, ...], seed: int) -> list[list[str]]:
    """Identity-disjoint split: a seeded shuffle cut into consecutive parts of the given shares."""
    rng = np.random.default_rng(seed)
    order = list(sorted(identities))
    rng.shuffle(order)
    cuts = np.round(np.cumsum(shares) / np.sum(shares) * len(order)).astype(int)
    parts, start = [], 0
    for c in cuts:
        parts.append(sorted(order[start:c]))
        start = c
    return parts


def identity_of(path: str) -> str:
    """Identity of a photo in a folder-per-identity dataset: its folder's name."""
    return Path(path).parent.name


class PKSampler:
    """Batches of P identities x K photos (photos drawn with replacement when an identity has fewer)."""

    def __init__(self, labels: np.ndarray, p: int, k: int, seed: int):
        self.p, self.k = p, k
        self.rng = np.random.default_rng(seed)
        self.by_label = [np.nonzero(labels == c)[0] for c in range(int(labels.max()) + 1)]
        self.by_label = [ix for ix in self.by_label if len(ix) >= 2]

    def batch(self) -> np.ndarray:
        chosen = self.rng.choice(len(self.by_label), size=self.p, replace=False)
        out = []
        for c in chosen:
            ix = self.by_label[c]
            out.append(self.rng.choice(ix, size=self.k, replace=len(ix) < self.k))
        return np.concatenate(out)


def augment(x, seed_pair=None):
    """Random flip, up to 6 % scale-and-shift jitter, brightness and contrast jitter, 10 % greyscale.

    x: (n, 112, 112, 3) float32 in [-1, 1]."""
    import tensorflow as tf

    n = tf.shape(x)[0]
    x = tf.where(tf.random.uniform([n, 1, 1, 1]) < 0.5, tf.reverse(x, axis=[2]), x)
    # crop a random box of 94..100 % of the side and resize back: small scale and position jitter
    size = tf.random.uniform([n, 1], 0.94, 1.0)
    y0 = tf.random.uniform([n, 1]) * (1.0 - size)
    x0 = tf.random.uniform([n, 1]) * (1.0 - size)
    boxes = tf.concat([y0, x0, y0 + size, x0 + size], axis=1)
    x = tf.image.crop_and_resize(x, boxes, tf.range(n), [112, 112])
    x = x * tf.random.uniform([n, 1, 1, 1], 0.7, 1.3) + tf.random.uniform([n, 1, 1, 1], -0.2, 0.2)
    grey = tf.reduce_mean(x, axis=3, keepdims=True) * tf.ones_like(x)
    x = tf.where(tf.random.uniform([n, 1, 1, 1]) < 0.1, grey, x)
    return tf.clip_by_value(x, -1.0, 1.0)


def prepare(cfg: TrainConfig) -> tuple[ChipSet, np.ndarray, list[str], list[str]]:
    """Load the cache, split identities (saved to split.csv), keep training photos where a face was found."""
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    cache = load_cache(cfg.chips)
    names = np.array([identity_of(p) for p in cache.paths])
    identities = sorted(set(names))
    train_ids, val_ids = split_identities(identities, (1.0 - cfg.val_share, cfg.val_share), cfg.seed)
    with open(run / "split.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["identity", "split"])
        w.writerows([(i, "train") for i in train_ids] + [(i, "val") for i in val_ids])
    return cache, names, train_ids, val_ids


def train(cfg: TrainConfig, log=print) -> Path:
    """Run (or resume) training; returns the path of the exported extractor once `cfg.steps` are done."""
    from models.detect import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from models.extractor import preprocess
    from models.losses import batch_hard_triplet_loss, cosine_margin_logits
    from models.network import build_backbone

    run = Path(cfg.run)
    cache, names, train_ids, val_ids = prepare(cfg)
    (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    keep = np.isin(names, train_ids) & cache.found
    chips = cache.chips[keep]
    label_of = {n: i for i, n in enumerate(train_ids)}
    labels = np.array([label_of[n] for n in names[keep]], np.int32)
    log(f"training on {len(chips)} photos of {len(set(labels))} identities; {len(val_ids)} identities held out")

    tf.keras.utils.set_random_seed(cfg.seed)
    model = build_backbone(cfg.dim)
    class_weights = tf.Variable(tf.random.normal([cfg.dim, len(train_ids)], stddev=0.01), name="class_weights")
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, cfg.steps - cfg.warmup_steps), warmup_target=cfg.learning_rate,
        warmup_steps=min(cfg.warmup_steps, cfg.steps // 5),
        alpha=0.01)
    opt = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    step_var = tf.Variable(0, dtype=tf.int64, name="step")
    ckpt = tf.train.Checkpoint(model=model, class_weights=class_weights, optimizer=opt, step=step_var)
    manager = tf.train.CheckpointManager(ckpt, str(run / "ckpt"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        log(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}")
    variables = model.trainable_variables + [class_weights]

    @tf.function
    def train_step(x, y):
        x = augment(x)
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            trip = batch_hard_triplet_loss(emb, y, cfg.triplet_margin)
            logits = cosine_margin_logits(emb, class_weights, y, cfg.softmax_scale, cfg.softmax_margin)
            soft = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            loss = cfg.triplet_weight * trip + cfg.softmax_weight * soft
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss, trip, soft

    history = run / "history.csv"
    new_history = not history.exists()
    hist_fh = open(history, "a", newline="")
    writer = csv.writer(hist_fh)
    if new_history:
        writer.writerow(["step", "loss", "triplet", "softmax", "seconds", "images_per_s"])
    start_step = int(step_var.numpy())
    sampler = PKSampler(labels, cfg.identities_per_batch, cfg.photos_per_identity, seed=cfg.seed + start_step)
    t_start = time.time()
    t_last, acc = time.time(), np.zeros(3)
    every = 50
    step = start_step
    while step < cfg.steps:
        idx = sampler.batch()
        x = preprocess(chips[idx])
        loss, trip, soft = train_step(tf.constant(x), tf.constant(labels[idx]))
        acc += [float(loss), float(trip), float(soft)]
        step += 1
        step_var.assign(step)
        if step % every == 0:
            dt = time.time() - t_last
            ips = every * len(idx) / dt
            writer.writerow([step, *(acc / every).round(4), round(dt, 2), round(ips, 1)])
            hist_fh.flush()
            log(f"step {step}/{cfg.steps} loss {acc[0] / every:.3f} triplet {acc[1] / every:.3f} "
                f"softmax {acc[2] / every:.3f} {ips:.0f} img/s")
            acc[:] = 0
            t_last = time.time()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            manager.save(checkpoint_number=step)
        if cfg.max_hours and time.time() - t_start > cfg.max_hours * 3600:
            manager.save(checkpoint_number=step)
            log(f"stopping at step {step} after {cfg.max_hours} h; rerun the same command to resume")
            hist_fh.close()
            return run
    hist_fh.close()
    out = run / "extractor.keras"
    model.save(out)
    log(f"saved {out}")
    return out
