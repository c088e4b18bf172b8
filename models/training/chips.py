"""A cache of aligned chips: every photo of a dataset detected and aligned once, stored in shards.

Layout of a cache folder: `shard-NNNNN.npz` holding `chips` (n, side, side, 3) uint8, cut for one chip
geometry (`models.align`: 112 px for the baseline networks, 150 px for the dlib-based extractor; the caller
names the folder after it), and, per photo, its path, whether a face was found and the detector score. A
shard is written to a temporary name and renamed, so a killed run, rerun, redoes at most one shard. Where no
face is found the chip is cut from the centre of the photo (the labelled face of a loose crop sits there) and
the photo is listed in `no_face.csv`.
"""
from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.align import ARCFACE_112, ChipGeometry, align, centre_face
from models.detect import MAIN_FACE_MIN_SCORE, Detector, main_face
from models.faces import Box, Face
from models.files import write_atomic
from models.image import ImageError, read_image


@dataclass(frozen=True)
class ChipSet:
    """Chips of a list of photos, in the order of that list."""

    chips: np.ndarray  # (n, side, side, 3) uint8
    found: np.ndarray  # (n,) bool: a face was detected (else the chip is the centre of the photo)
    scores: np.ndarray  # (n,) float32 detector score, 0 where none was found
    paths: tuple[str, ...]
    reasons: tuple[str, ...] = ()  # per photo: why no face was found ("" where one was)


def chip_photos(paths: list[Path], detector: Detector, canvas: int = 0,
                geometry: ChipGeometry = ARCFACE_112) -> ChipSet:
    """Detect and align the main face of each photo for `geometry`. With `canvas`, photos that fit are centred
    on a black square of that side before detection, so photos of varied sizes batch together and tight crops
    get a margin; landmarks are mapped back to the photo."""
    # decoding releases the GIL: threads read the photos in parallel while MTCNN uses every core
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        decoded = list(pool.map(_read_or_reason, paths))
    images = [img for img, _ in decoded]
    reasons = [why for _, why in decoded]
    placed = [on_canvas(img, canvas) for img in images]
    offsets = [offset for _, offset in placed]
    # each photo is about one face: the likeliest below the detector's score is taken where none reaches it
    found_faces = detector.detect([board for board, _ in placed], min_score=MAIN_FACE_MIN_SCORE)
    chips = np.zeros((len(paths), geometry.size, geometry.size, 3), np.uint8)
    found = np.zeros(len(paths), bool)
    scores = np.zeros(len(paths), np.float32)
    for i, (img, faces, (ox, oy)) in enumerate(zip(images, found_faces, offsets)):
        h, w = img.shape[:2]
        shifted = [shift_face(f, -ox, -oy) for f in faces]
        face = main_face(shifted, w, h, detector.min_score) if not reasons[i] else None
        if face is None:
            reasons[i] = reasons[i] or "no face found by MTCNN; chip cut from the centre of the photo"
            face = centre_face(w, h)
        else:
            found[i] = True
            scores[i] = face.score
        chips[i] = align(img, face, geometry)
    return ChipSet(chips, found, scores, tuple(str(p) for p in paths), tuple(reasons))


def _read_or_reason(path: Path) -> tuple[np.ndarray, str]:
    """The decoded photo and "", or a black stand-in and the reason it could not be read."""
    try:
        return read_image(path), ""
    except ImageError as e:
        return np.zeros((64, 64, 3), np.uint8), str(e)


def on_canvas(image: np.ndarray, canvas: int) -> tuple[np.ndarray, tuple[int, int]]:
    """`image` centred on a black canvas x canvas square, and its offset there (x, y); as is (offset 0, 0)
    when `canvas` is 0 or the image does not fit."""
    h, w = image.shape[:2]
    if not canvas or h > canvas or w > canvas:
        return image, (0, 0)
    oy, ox = (canvas - h) // 2, (canvas - w) // 2
    board = np.zeros((canvas, canvas, 3), np.uint8)
    board[oy:oy + h, ox:ox + w] = image
    return board, (ox, oy)


def shift_face(face: Face, dx: float, dy: float) -> Face:
    """The same face moved by (dx, dy) pixels: box and landmarks."""
    b = face.box
    return Face(Box(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy), face.landmarks + np.float32([dx, dy]), face.score)


def build_cache(paths: list[Path], out: str | Path, detector: Detector | None = None, shard_size: int = 512,
                canvas: int = 0, progress: bool = True, geometry: ChipGeometry = ARCFACE_112) -> Path:
    """Chip every photo of `paths` for `geometry` into shards under `out`; shards already there are kept
    (resumable)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # photos are named by absolute paths: a relative one would mean another photo from another folder
    paths = [Path(os.path.abspath(p)) for p in paths]
    detector = detector or Detector()
    n_shards = (len(paths) + shard_size - 1) // shard_size
    todo = [s for s in range(n_shards) if not (out / f"shard-{s:05d}.npz").exists()]
    bar = _bar(len(todo), progress, f"chipping {len(paths)} photos into {out}")
    for s in todo:
        chunk = list(paths[s * shard_size:(s + 1) * shard_size])
        result = chip_photos(chunk, detector, canvas=canvas, geometry=geometry)
        buf = io.BytesIO()
        np.savez(buf, chips=result.chips, found=result.found, scores=result.scores,
                 # fixed-width unicode arrays, which load without pickle
                 paths=np.array(result.paths, dtype=str), reasons=np.array(result.reasons, dtype=str))
        write_atomic(out / f"shard-{s:05d}.npz", buf.getvalue())
        bar.update(1)
    bar.close()
    cache = load_cache(out)
    with open(out / "no_face.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason"])
        for p, ok, why in zip(cache.paths, cache.found, cache.reasons):
            if not ok:
                writer.writerow([p, why])
    return out


def load_cache(out: str | Path) -> ChipSet:
    """All shards of a cache folder, concatenated in shard order."""
    out = Path(out)
    shards = sorted(out.glob("shard-*.npz"))
    if not shards:
        raise FileNotFoundError(f"{out}: no chip shards (build the cache first)")
    parts = [np.load(s, allow_pickle=False) for s in shards]
    return ChipSet(
        np.concatenate([p["chips"] for p in parts]),
        np.concatenate([p["found"] for p in parts]),
        np.concatenate([p["scores"] for p in parts]),
        tuple(str(x) for p in parts for x in p["paths"]),
        tuple(why for p in parts for why in _reasons(p)),
    )


def _reasons(shard) -> list[str]:
    if "reasons" in shard:
        return [str(x) for x in shard["reasons"]]
    # shards written before reasons were stored: only "no face found" can have happened there
    return ["" if ok else "no face found by MTCNN; chip cut from the centre of the photo" for ok in shard["found"]]


def _bar(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="shard", file=None)
