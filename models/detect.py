"""MTCNN face detection: batched by image size, large photos detected on a downscaled copy.

One MTCNN call takes images of one size, at most `batch_size` of them and at most `max_call_pixels` pixels
in all (about 4.9 M: six 1024x768 copies), since its memory grows with the pixels of a call: small photos go many at a
time, large ones a few, whatever the caller's batch.

The networks run on ONNX Runtime (`models/cascade.py`), with the weights shipped inside the `mtcnn` package,
loaded on first use; TensorFlow is not imported.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from models.cascade import ONET_THRESHOLD, Cascade
from models.faces import Box, Face

# Photos are detected on a copy whose long side is at most this many pixels. MTCNN's cost grows with the
# pixel count: on 1920x1080 photos a 1024 px copy took a quarter less time to index than a 1280 px one
# (docs/benchmarks.md). With faces from DEFAULT_MIN_FACE_PX on the copy, the smallest face found is about
# 38 px in a 1920x1080 photo and 78 px in a 4000x3000 one; face_recognition's command-line tool, which
# shrinks photos to 1600 px and upsamples once for its 80 px HOG window, starts at about 48 and 100 px.
DEFAULT_MAX_SIDE = 1024

DEFAULT_MIN_FACE_PX = 20
# The lowest score the cascade reports at all (its last network's own threshold). A photo given as the photo
# of one face (`verify`, `enroll`, the benchmarks' loose crops) takes its likeliest face down to this score
# when none reaches the detector's `min_score`: there the face is known to be there, while scanning a library
# (`index`, `who`) a face below `min_score` is more often not a face at all. On LFW this found a face in 5 of
# the 8 photos (of 7,701) where none reached 0.9; `docs/extractor.md`.
MAIN_FACE_MIN_SCORE = ONET_THRESHOLD
# Below 12 px the first pyramid level would enlarge the photo, which the cascade is not written for.
MIN_FACE_PX_FLOOR = 12

# Pixels of the (downscaled) images given to one MTCNN call: six 1024x768 copies, or sixteen LFW pictures.
DEFAULT_MAX_CALL_PIXELS = 4 * 1280 * 960


class Detector:
    """MTCNN with its models loaded once. `detect` takes a list of RGB uint8 images, returns faces per image."""

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE, min_face_px: int = DEFAULT_MIN_FACE_PX,
                 min_score: float = 0.9, batch_size: int = 16, max_call_pixels: int = DEFAULT_MAX_CALL_PIXELS,
                 graph_cache: Path | None = None):
        if min_face_px < MIN_FACE_PX_FLOOR:
            raise ValueError(f"min_face_px must be at least {MIN_FACE_PX_FLOOR}: MTCNN's 12 px window is its smallest face")
        self.max_side = max_side
        self.min_face_px = min_face_px
        self.min_score = min_score
        self.batch_size = batch_size  # images per MTCNN call at most
        self.max_call_pixels = max_call_pixels  # pixels per MTCNN call at most (one image always goes)
        self.graph_cache = graph_cache  # folder of MTCNN's built ONNX graphs (`models.cascade.Cascade`)
        self._cascade = None

    def load(self) -> None:
        """Load MTCNN's networks now rather than on the first `detect`."""
        self._model()

    def _model(self):
        if self._cascade is None:
            self._cascade = Cascade(self.graph_cache)
        return self._cascade

    def detect(self, images: list[np.ndarray], min_score: float | None = None) -> list[list[Face]]:
        """Faces found in each image, best score first, in the pixel coordinates of that image; those scoring
        at least `min_score` (default: the detector's own)."""
        floor = self.min_score if min_score is None else min_score
        factors: list[float] = []
        by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"detect wants (h, w, 3) uint8 RGB images, got {image.shape} {image.dtype}")
            h, w = image.shape[:2]
            factor = min(1.0, self.max_side / max(h, w))
            if factor < 1.0:
                h, w = max(1, round(h * factor)), max(1, round(w * factor))
            factors.append(factor)
            by_shape[(h, w)].append(i)

        results: list[list[Face]] = [[] for _ in images]
        for (h, w), indices in by_shape.items():
            if min(h, w) < 12:
                continue  # smaller than MTCNN's first window: nothing can be found
            per_call = max(1, min(self.batch_size, self.max_call_pixels // (h * w)))
            for start in range(0, len(indices), per_call):
                chunk = indices[start:start + per_call]
                # downscaled copies are made per call, so only those of one call are held at once
                found = self._detect_equal([self._scaled(images[i], w, h) for i in chunk], floor)
                for i, faces in zip(chunk, found):
                    results[i] = [f.scaled(1.0 / factors[i]) if factors[i] != 1.0 else f for f in faces]
        return results

    @staticmethod
    def _scaled(image: np.ndarray, w: int, h: int) -> np.ndarray:
        """The image resized to w x h by pixel-area averaging. A photo at least twice as large is halved first:
        OpenCV's area filter is several times faster at a whole factor, and the two steps together took 24 ms
        instead of 49 for a 12 MP photo to 1280x960, differing from one step by 1 grey level on average."""
        if image.shape[:2] == (h, w):
            return image
        if image.shape[0] >= 2 * h and image.shape[1] >= 2 * w:
            image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

    def _detect_equal(self, images: list[np.ndarray], floor: float) -> list[list[Face]]:
        rows = self._model().detect(list(images), min_face_px=self.min_face_px)
        out: list[list[Face]] = [[] for _ in images]
        for row in rows:
            score = float(row[5])
            if score < floor:
                continue
            # Boxes are rounded to whole pixels, as mtcnn 1.0.0 reports them; landmarks keep their fractions.
            # On a 160 px LFW photo a rounded point moves by up to 1 % of the eye distance: keeping fractions
            # changed nothing on the validation identities (TAR at FAR 1e-3 83.26 % against 83.27 %) and
            # gained 0.05 point on LFW (`docs/extractor.md`). The from-scratch baseline networks were trained
            # on chips from rounded points: for them the change is within the same noise.
            x0, y0, x1, y1 = (float(v) for v in np.round(row[1:5]))
            landmarks = np.stack([row[6:11], row[11:16]], axis=1).astype(np.float32)
            out[int(row[0])].append(Face(Box(x0, y0, x1, y1), landmarks, score))
        for faces in out:
            faces.sort(key=lambda f: -f.score)
        return out


def main_face(faces: list[Face], width: int, height: int, min_score: float = 0.0) -> Face | None:
    """The face a loose crop is about: the largest, ties broken by closeness to the centre, among the faces
    scoring at least `min_score`; when none does, the best-scoring face (detect with `MAIN_FACE_MIN_SCORE`
    to have such faces at all)."""
    if not faces:
        return None
    confident = [f for f in faces if f.score >= min_score]
    if not confident:
        return max(faces, key=lambda f: f.score)
    faces = confident
    cx, cy = width / 2, height / 2

    def key(f: Face):
        fx, fy = (f.box.x0 + f.box.x1) / 2, (f.box.y0 + f.box.y1) / 2
        off = ((fx - cx) ** 2 + (fy - cy) ** 2) ** 0.5 / max(width, height)
        return f.box.area * (1.0 - off)

    return max(faces, key=key)
