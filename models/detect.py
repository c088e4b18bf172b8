"""MTCNN face detection: batched by image size, large photos detected on a downscaled copy.

The detector loads TensorFlow and the MTCNN weights (shipped inside the `mtcnn` package) on first use.
"""
from __future__ import annotations

import os
from collections import defaultdict

import cv2
import numpy as np

from models.faces import Box, Face

_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# Photos are detected on a copy whose long side is at most this many pixels. MTCNN's cost grows with the
# pixel count; at 1280 px a face of 24 px is still found in a 4000 px photo when it is about 75 px there.
DEFAULT_MAX_SIDE = 1280

# MTCNN 1.0.0 finds nothing when min_face_size is 30 or more, so it is kept at or below 24.
DEFAULT_MIN_FACE_PX = 20


def quiet_tensorflow() -> None:
    """Ask TensorFlow for fewer log lines (it still prints some CUDA probing that nothing silences)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


class Detector:
    """MTCNN with its models loaded once. `detect` takes a list of RGB uint8 images, returns faces per image."""

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE, min_face_px: int = DEFAULT_MIN_FACE_PX,
                 min_score: float = 0.9, batch_size: int = 16):
        if min_face_px >= 30:
            raise ValueError("min_face_px must stay below 30: MTCNN 1.0.0 finds no face at all from 30 up")
        self.max_side = max_side
        self.min_face_px = min_face_px
        self.min_score = min_score
        self.batch_size = batch_size
        self._mtcnn = None

    def _model(self):
        if self._mtcnn is None:
            quiet_tensorflow()
            from mtcnn import MTCNN

            self._mtcnn = MTCNN(device="CPU:0")
        return self._mtcnn

    def detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces found in each image, best score first, in the pixel coordinates of that image."""
        scaled: list[np.ndarray] = []
        factors: list[float] = []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"detect wants (h, w, 3) uint8 RGB images, got {image.shape} {image.dtype}")
            h, w = image.shape[:2]
            factor = min(1.0, self.max_side / max(h, w))
            if factor < 1.0:
                image = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))),
                                   interpolation=cv2.INTER_AREA)
            scaled.append(image)
            factors.append(factor)

        results: list[list[Face]] = [[] for _ in images]
        by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in enumerate(scaled):
            by_shape[image.shape[:2]].append(i)
        for (h, w), indices in by_shape.items():
            if min(h, w) < 12:
                continue  # smaller than MTCNN's first window: nothing can be found
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                found = self._detect_equal([scaled[i] for i in chunk])
                for i, faces in zip(chunk, found):
                    results[i] = [f.scaled(1.0 / factors[i]) if factors[i] != 1.0 else f for f in faces]
        return results

    def _detect_equal(self, images: list[np.ndarray]) -> list[list[Face]]:
        model = self._model()
        if len(images) == 1:
            raw = [model.detect_faces(images[0], min_face_size=self.min_face_px, box_format="xyxy")]
        else:
            raw = model.detect_faces(list(images), min_face_size=self.min_face_px, box_format="xyxy")
        out = []
        for dets in raw:
            faces = []
            for d in dets:
                score = float(d["confidence"])
                if score < self.min_score:
                    continue
                x0, y0, x1, y1 = (float(v) for v in d["box"])
                kp = d["keypoints"]
                landmarks = np.array([kp[k] for k in _KEYPOINTS], dtype=np.float32)
                faces.append(Face(Box(x0, y0, x1, y1), landmarks, score))
            faces.sort(key=lambda f: -f.score)
            out.append(faces)
        return out


def main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The face a loose crop is about: the largest, ties broken by closeness to the centre."""
    if not faces:
        return None
    cx, cy = width / 2, height / 2

    def key(f: Face):
        fx, fy = (f.box.x0 + f.box.x1) / 2, (f.box.y0 + f.box.y1) / 2
        off = ((fx - cx) ** 2 + (fy - cy) ** 2) ** 0.5 / max(width, height)
        return f.box.area * (1.0 - off)

    return max(faces, key=key)
