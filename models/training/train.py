"""Training the extractor networks on a chip cache, resumable after a kill.

Two backbones: `dlib`, dlib's public-domain face network read from its weights file (`models/training/dlib_port.py`,
150 px chips), which the shipped extractor fine-tunes; and `scratch`, the toolkit's baseline ResNet
(`models/training/network.py`, 112 px chips) from random weights. With `steps=0` a `dlib` run is the plain port, measured
and shippable like any other run. Three objectives share one input pipeline (`models/training/input_pipeline.py`,
P identities x K photos per batch), mined inside each batch:
- `triplet`: batch-hard triplet loss on cosine distance (the shipped extractor);
- `contrastive`: contrastive loss over every pair of the batch;
- `pairs`: a siamese pair classifier, binary cross-entropy of a small head on pair features.
An additive-cosine-margin softmax over the training identities can be added to any of them
(`softmax_weight`; it speeds up the first epochs on a CPU), and so can embedding distillation from a teacher
(`distill_weight`: the student's embedding of each augmented chip is pulled towards dlib's embedding of that
photo, partly centred by `models.training.teacher.load_teacher` and stored beside the chip cache by
`scripts/build_teacher.py`; the teacher is used at training time only). Everything a run produces lives in
its run folder: `config.json`, `split.csv`, `history.csv`, checkpoints under `ckpt/`, and at the end
`extractor.keras` (plus `pair_head.keras` for `pairs`).
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.files import write_atomic
from models.training.chips import ChipSet, load_cache


LOSSES = ("triplet", "contrastive", "pairs")
BACKBONES = ("scratch", "dlib")
# The shipped fine-tune's recipe (docs/extractor.md): the defaults of `facesearch train --backbone dlib` and
# `scripts/train_extractor.py --backbone dlib`. The port already embeds well: a low learning rate, its stem and
# first two stages frozen, a triplet margin of the port's own scale, no softmax, and a pull towards the port's own
# vectors; the recipes that moved it further lost on the validation identities.
DLIB_RECIPE = dict(steps=800, learning_rate=3e-5, frozen_stages=2, triplet_margin=0.1, softmax_weight=0.0,
                   distill_weight=5.0, distill_mode="anchor")


def recipe(backbone: str, **given) -> dict:
    """TrainConfig settings for a backbone: those given (None: not given) over the backbone's defaults, which
    are `DLIB_RECIPE` for dlib and TrainConfig's own for the baseline."""
    settings = dict(DLIB_RECIPE) if backbone == "dlib" else {}
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


def geometry_of(backbone: str):
    """The chip geometry (models.align) a backbone reads."""
    from models.align import ARCFACE_112, DLIB_150

    return DLIB_150 if backbone == "dlib" else ARCFACE_112


# Caches for the dlib-based extractor cut since the detector keeps landmark fractions and a photo of one face
# takes its likeliest face below the detection score (2026-12-03, `models/detect.py`) carry this suffix, so
# that a cache cut before (rounded landmarks, 8 LFW photos without a face instead of 3) is not read as one.
DETECTION_REVISION = "2"


def cache_name(dataset: str, geometry) -> str:
    """The chip cache folder of a dataset ("train", "lfw-view2") for a chip geometry: the baseline's keeps the
    plain name its caches always had (its networks were trained on chips from rounded landmarks); the dlib
    geometry's names carry `DETECTION_REVISION`."""
    return dataset if geometry.name == "arcface112" else f"{dataset}-{geometry.name}-{DETECTION_REVISION}"


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of one training run; saved in the run folder and in the model card."""

    chips: str  # chip cache folder (see models/training/chips.py)
    run: str  # run folder: checkpoints, history, exported model
    loss: str = "triplet"  # triplet | contrastive | pairs (siamese pair classifier)
    steps: int = 2000
    identities_per_batch: int = 32  # P
    photos_per_identity: int = 4  # K
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 150
    triplet_margin: float = 0.3
    contrastive_margin: float = 0.5
    triplet_weight: float = 1.0
    softmax_weight: float = 1.0  # the cosine-margin softmax term, added to any of the three losses
    softmax_scale: float = 30.0
    softmax_margin: float = 0.2
    dim: int = 128
    widths: tuple = (24, 48, 96, 192)  # channels of the backbone's four stages (models/training/network.py)
    depths: tuple = (1, 2, 2, 1)  # residual blocks per stage
    augment: bool = True  # flip, crop, colour and grey jitter of training chips (models/training/input_pipeline.py)
    flip: bool = True  # the shipped extractor averages each chip's embedding with its mirror image's
    distill_weight: float = 0.0  # > 0: add 1 - cos(student, teacher) with dlib's embeddings (models/training/teacher.py)
    distill_mode: str = "position"  # position: 1 - cos(student, teacher); relation: pairwise cosines matched;
    # anchor (dlib backbone): 1 - cos(student, the starting port's own vector of the photo): a fine-tune that
    # may move only as far as the triplet loss pays for
    teacher_centre: float = 0.7  # share of the training photos' mean teacher embedding removed (load_teacher)
    split: tuple = (0.9, 0.1, 0.0)  # train / validation / test shares of the identities
    seed: int = 1
    checkpoint_every: int = 250
    max_hours: float = 0.0  # stop (checkpointed, resumable) after this much wall time in this process; 0 = no limit
    init_from: str = ""  # a run folder (its last checkpoint) or a shipped model (extractor.keras): start from it
    backbone: str = "scratch"  # scratch: models/training/network.py from random weights; dlib: the ported dlib network
    frozen_stages: int = 0  # dlib backbone: its stem and this many residual stages after it are not trained
    hard_identities: bool = False  # batches of look-alike pairs of identities, found by the starting network


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


def prepare(cfg: TrainConfig) -> tuple[ChipSet, np.ndarray, list[str], list[str]]:
    """Load the cache, split identities (saved to split.csv), keep training photos where a face was found."""
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    cache = load_cache(cfg.chips)
    names = np.array([identity_of(p) for p in cache.paths])
    identities = sorted(set(names))
    train_ids, val_ids, test_ids = split_identities(identities, tuple(cfg.split), cfg.seed)
    with open(run / "split.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["identity", "split"])
        w.writerows([(i, "train") for i in train_ids] + [(i, "val") for i in val_ids]
                    + [(i, "test") for i in test_ids])
    return cache, names, train_ids, val_ids


def train(cfg: TrainConfig, log=print) -> Path:
    """Run (or resume) training; returns the path of the exported extractor once `cfg.steps` are done
    (or the run folder when `max_hours` stopped it first)."""
    if cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {cfg.loss!r}")
    if cfg.backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, not {cfg.backbone!r}")
    if cfg.distill_mode not in ("position", "relation", "anchor"):
        raise ValueError(f"distill_mode must be position, relation or anchor, not {cfg.distill_mode!r}")
    if cfg.distill_mode == "anchor" and cfg.backbone != "dlib":
        raise ValueError("distill_mode anchor pulls towards the port's own vectors: it needs the dlib backbone")
    from models.training.network import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from models.training.losses import (batch_hard_triplet_loss, contrastive_loss, cosine_margin_logits,
                               distill_position_loss, distill_relation_loss, pair_classifier_loss)
    from models.training.network import build_backbone, build_pair_head
    from models.training.input_pipeline import make_dataset, measure_pipeline

    run = Path(cfg.run)
    cache, names, train_ids, val_ids = prepare(cfg)
    (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    keep = np.isin(names, train_ids) & cache.found
    chips = cache.chips[keep]
    label_of = {n: i for i, n in enumerate(train_ids)}
    labels = np.array([label_of[n] for n in names[keep]], np.int32)
    targets = None
    if cfg.distill_weight and cfg.distill_mode != "anchor":
        from models.training.teacher import load_teacher

        targets = load_teacher(cfg.chips, tuple(np.array(cache.paths)[keep]), cfg.teacher_centre)
        usable = np.linalg.norm(targets, axis=1) > 0.5  # photos the teacher could not read have zeros
        chips, labels, targets = chips[usable], labels[usable], targets[usable]
    log(f"training ({cfg.loss}) on {len(chips)} photos of {len(set(labels))} identities; "
        f"{len(val_ids)} identities held out for validation")

    tf.keras.utils.set_random_seed(cfg.seed)
    if cfg.backbone == "dlib":
        from models.training.dlib_port import build_keras, find_dat, freeze, read_dat, source_record

        model = build_keras(read_dat(find_dat()))
        freeze(model, cfg.frozen_stages)
        (run / "source.json").write_text(json.dumps(source_record(find_dat()), indent=2))
        if cfg.steps == 0:  # the plain port
            out = run / "extractor.keras"
            model.save(out)
            log(f"saved the plain port of {find_dat()} as {out}")
            return out
        if cfg.distill_weight and cfg.distill_mode == "anchor":
            targets = anchor_vectors(run, model, chips)
            log(f"anchors: the port's own vectors of the {len(chips)} training photos ({run / 'anchors.npy'})")
    else:
        model = build_backbone(cfg.dim, tuple(cfg.widths), tuple(cfg.depths))
    class_weights = tf.Variable(tf.random.normal([cfg.dim, len(train_ids)], stddev=0.01), name="class_weights")
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, cfg.steps - cfg.warmup_steps), warmup_target=cfg.learning_rate,
        warmup_steps=min(cfg.warmup_steps, cfg.steps // 5), alpha=0.01)
    opt = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    step_var = tf.Variable(0, dtype=tf.int64, name="step")
    parts = dict(model=model, class_weights=class_weights, optimizer=opt, step=step_var)
    head = None
    if cfg.loss == "pairs":
        head = build_pair_head(cfg.dim)
        parts["pair_head"] = head
    ckpt = tf.train.Checkpoint(**parts)
    manager = tf.train.CheckpointManager(ckpt, str(run / "ckpt"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        log(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}")
    elif cfg.init_from:
        # a warm restart: earlier weights, a fresh optimizer and learning-rate schedule, step 0
        source = Path(cfg.init_from)
        earlier = tf.train.latest_checkpoint(str(source / "ckpt")) if source.is_dir() else None
        if earlier is not None:
            tf.train.Checkpoint(model=model, class_weights=class_weights).restore(earlier).expect_partial()
            log(f"starting from the weights of {earlier}")
        else:
            keras_file = source if source.suffix == ".keras" else source / "extractor.keras"
            if not keras_file.exists():
                raise FileNotFoundError(f"{cfg.init_from}: nothing to start from (no checkpoint in its ckpt folder, "
                                        "no extractor.keras)")
            model.set_weights(keras.saving.load_model(keras_file, compile=False).get_weights())
            # the source's metadata, for the model card: shipping this run overwrites a shipped source
            meta = keras_file.with_suffix(".json")
            (run / "started_from.json").write_text(meta.read_text() if meta.exists() else
                                                   json.dumps({"version": keras_file.name}))
            # a shipped model keeps no softmax weights: each class starts at its identity's mean embedding
            class_weights.assign(imprint_classes(model, chips, labels, len(train_ids)))
            log(f"starting from the weights of {keras_file}, class weights imprinted from its embeddings")
    elif cfg.backbone == "dlib":
        # the ported network already embeds well: each class starts at its identity's mean embedding
        class_weights.assign(imprint_classes(model, chips, labels, len(train_ids)))
        log("starting from the plain port, class weights imprinted from its embeddings")
    variables = (model.trainable_variables + ([class_weights] if cfg.softmax_weight else [])
                 + (head.trainable_variables if head else []))

    @tf.function
    def train_step(x, y, t):
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            if cfg.loss == "triplet":
                metric = batch_hard_triplet_loss(emb, y, cfg.triplet_margin)
            elif cfg.loss == "contrastive":
                metric = contrastive_loss(emb, y, cfg.contrastive_margin)
            else:
                metric = pair_classifier_loss(emb, y, head)
            soft = tf.constant(0.0)
            if cfg.softmax_weight:
                logits = cosine_margin_logits(emb, class_weights, y, cfg.softmax_scale, cfg.softmax_margin)
                soft = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            distill = tf.constant(0.0)
            if cfg.distill_weight:
                distill = (distill_relation_loss(emb, t) if cfg.distill_mode == "relation"
                           else distill_position_loss(emb, t))
            loss = cfg.triplet_weight * metric + cfg.softmax_weight * soft + cfg.distill_weight * distill
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss, metric, soft, distill

    start_step = int(step_var.numpy())
    neighbours = None
    if cfg.hard_identities:
        neighbours = look_alikes(run, class_weights.numpy())
        log("batches of look-alike identities (nearest by the starting network's mean embeddings, "
            f"{run / 'look_alikes.json'})")
    data = make_dataset(chips, labels, cfg.identities_per_batch, cfg.photos_per_identity, seed=cfg.seed + start_step,
                        augmented=cfg.augment, targets=targets, neighbours=neighbours)
    if not (run / "pipeline.json").exists():
        # the pipeline must outrun the training step, or training waits for input
        ips = measure_pipeline(data)
        (run / "pipeline.json").write_text(json.dumps({"pipeline_images_per_s": round(ips, 1)}))
        log(f"input pipeline alone: {ips:.0f} images/s")
    history = run / "history.csv"
    header = ["step", "loss", cfg.loss, "softmax", "distill", "seconds", "images_per_s"]
    kept = [r for r in _history_rows(history) if int(r[0]) <= start_step]  # rows after the checkpoint are redone
    with open(history, "w", newline="") as hist_fh:
        csv.writer(hist_fh).writerows([header, *kept])
    with open(history, "a", newline="") as hist_fh:
        writer = csv.writer(hist_fh)
        t_start = t_last = time.time()
        acc, step = np.zeros(4), start_step
        every = max(1, min(50, cfg.steps // 10))  # history rows: every 50 steps, at least 10 a run
        for x, y, t in data:
            if step >= cfg.steps:
                break
            acc += [float(v) for v in train_step(x, y, t)]
            step += 1
            step_var.assign(step)
            if step % every == 0:
                dt = time.time() - t_last
                ips = every * int(x.shape[0]) / dt
                writer.writerow([step, *(acc / every).round(4), round(dt, 2), round(ips, 1)])
                hist_fh.flush()
                log(f"step {step}/{cfg.steps} loss {acc[0] / every:.3f} {cfg.loss} {acc[1] / every:.3f} "
                    f"softmax {acc[2] / every:.3f} distill {acc[3] / every:.3f} {ips:.0f} img/s")
                acc[:] = 0
                t_last = time.time()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                manager.save(checkpoint_number=step)
            if cfg.max_hours and time.time() - t_start > cfg.max_hours * 3600 and step < cfg.steps:
                manager.save(checkpoint_number=step)
                log(f"stopping at step {step} after {cfg.max_hours} h; rerun the same command to resume")
                return run
    if head is not None:
        head.save(run / "pair_head.keras")
    out = run / "extractor.keras"
    model.save(out)
    log(f"saved {out}")
    return out


def anchor_vectors(run: Path, model, chips: np.ndarray, batch: int = 256) -> np.ndarray:
    """The starting network's unit vectors of `chips` (as cached, no augmentation), computed once per run and
    kept in anchors.npy, so that a resumed run pulls towards the same ones."""
    f = run / "anchors.npy"
    if not f.exists():
        from models.extractor import preprocess

        vectors = np.concatenate([np.asarray(model(preprocess(chips[i:i + batch]), training=False))
                                  for i in range(0, len(chips), batch)])
        buf = io.BytesIO()
        np.save(buf, vectors.astype(np.float32))
        write_atomic(f, buf.getvalue())
    return np.load(f)


def look_alikes(run: Path, class_weights: np.ndarray, near: int = 10) -> dict:
    """For each training class, its `near` nearest classes by cosine of the (dim, classes) softmax weights; the
    first call of a run computes them (from the weights imprinted by the starting network) and keeps them in
    look_alikes.json, so a resumed run draws from the same neighbours, not from weights trained since."""
    f = run / "look_alikes.json"
    if not f.exists():
        w = class_weights / np.maximum(np.linalg.norm(class_weights, axis=0, keepdims=True), 1e-12)
        sims = w.T @ w
        np.fill_diagonal(sims, -np.inf)
        nearest = np.argsort(-sims, axis=1)[:, :near]
        write_atomic(f, json.dumps({str(c): [int(n) for n in row] for c, row in enumerate(nearest)}))
    return {int(c): row for c, row in json.loads(f.read_text()).items()}


def imprint_classes(model, chips: np.ndarray, labels: np.ndarray, classes: int, per_class: int = 8,
                    batch: int = 256) -> np.ndarray:
    """(dim, classes) softmax weights for a network that already embeds well: the normalised mean embedding of
    up to `per_class` photos of each identity (classes without photos get small random columns)."""
    rng = np.random.default_rng(0)
    picks = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(classes)])
    embs = np.concatenate([model((chips[picks[i:i + batch]].astype(np.float32) - 127.5) / 128.0, training=False)
                           for i in range(0, len(picks), batch)])
    dim = embs.shape[1]
    weights = rng.normal(0.0, 0.01, (classes, dim)).astype(np.float32)
    sums = np.zeros((classes, dim), np.float32)
    np.add.at(sums, labels[picks], embs)
    has = np.bincount(labels[picks], minlength=classes) > 0
    weights[has] = sums[has] / np.linalg.norm(sums[has], axis=1, keepdims=True)
    return weights.T


def _history_rows(path: Path) -> list[list[str]]:
    """The step rows of a run's history.csv (none when it is missing): a run killed after its last checkpoint
    leaves rows that the resumed run writes again, and those are dropped by the caller."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [r for r in csv.reader(fh) if r and r[0].isdigit()]
