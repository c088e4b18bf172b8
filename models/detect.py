"""MTCNN face detection: batched by image size, large photos detected on a downscaled copy.

One MTCNN call takes images of one size, at most `batch_size` of them and at most `max_call_pixels` pixels
in all (four copies of 1280x960), since its memory grows with the pixels of a call: small photos go many at a
time, large ones a few, whatever the caller's batch.

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

# Pixels of the (downscaled) images given to one MTCNN call: four 1280x960 copies, or sixteen LFW pictures.
DEFAULT_MAX_CALL_PIXELS = 4 * 1280 * 960


def quiet_tensorflow() -> None:
    """Ask TensorFlow for fewer log lines (it still prints some CUDA probing that nothing silences)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


# The input shape of each MTCNN stage's network, by stage id: P-Net is fully convolutional (any image size),
# R-Net and O-Net take 24 and 48 px patches.
_STAGE_INPUTS = {1: (None, None, None, 3), 2: (None, 24, 24, 3), 3: (None, 48, 48, 3)}


def as_graphs(mtcnn):
    """`mtcnn` with each stage's network called as one TensorFlow graph instead of layer by layer from Python.

    MTCNN 1.0.0 calls its Keras networks eagerly, P-Net once per pyramid scale (about 12 calls for a 1280x720
    copy). Measured on this project's 2-core machine (`bench/query_latency.py`): MTCNN on one 1920x1080 photo
    took 166 ms instead of 337, with the same faces, boxes and scores (tests/test_models_detect.py compares them). Each signature leaves the
    image size open, so a new photo size costs no new tracing. Relies on the stages keeping their network in
    `_model` (mtcnn is pinned to 1.0.0); a stage without one is left as it is.
    """
    import tensorflow as tf

    for stage in getattr(mtcnn, "stages", []):
        net, shape = getattr(stage, "_model", None), _STAGE_INPUTS.get(getattr(stage, "id", None))
        if net is None or shape is None:
            continue
        stage._model = tf.function(lambda x, net=net: net(x), input_signature=[tf.TensorSpec(shape, tf.float32)])
    if isinstance(getattr(mtcnn, "_stages", None), list):  # where MTCNN 1.0.0 keeps them
        shared = _OneTensor()
        mtcnn._stages = [_TensorInput(stage, shared) for stage in mtcnn._stages]
    return mtcnn


class _OneTensor:
    """The batch of one MTCNN call as a TensorFlow tensor, made once and shared by the three stages."""

    def __init__(self):
        self._array = None
        self._tensor = None

    def __call__(self, array):
        import tensorflow as tf

        if not isinstance(array, np.ndarray):
            return array
        if array is not self._array:
            self._array, self._tensor = array, tf.constant(array)
        return self._tensor


class _TensorInput:
    """An MTCNN stage given the normalised batch as a tensor rather than a NumPy array.

    MTCNN 1.0.0 hands each stage the batch as a NumPy array, and every `tf.image.resize` of the pyramid (about
    12 per call) and every `crop_and_resize` converts it again: for four 1280x960 copies, 59 MB copied each
    time, a third of MTCNN's time on 12 MP photos. The same values as a tensor give the same results.
    """

    def __init__(self, stage, tensor_of: _OneTensor):
        self._stage = stage
        self._tensor_of = tensor_of

    def __getattr__(self, name):
        return getattr(self._stage, name)

    def __call__(self, *args, images_normalized=None, **kwargs):
        return self._stage(*args, images_normalized=self._tensor_of(images_normalized), **kwargs)


class Detector:
    """MTCNN with its models loaded once. `detect` takes a list of RGB uint8 images, returns faces per image."""

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE, min_face_px: int = DEFAULT_MIN_FACE_PX,
                 min_score: float = 0.9, batch_size: int = 16, max_call_pixels: int = DEFAULT_MAX_CALL_PIXELS):
        if min_face_px >= 30:
            raise ValueError("min_face_px must stay below 30: MTCNN 1.0.0 finds no face at all from 30 up")
        self.max_side = max_side
        self.min_face_px = min_face_px
        self.min_score = min_score
        self.batch_size = batch_size  # images per MTCNN call at most
        self.max_call_pixels = max_call_pixels  # pixels per MTCNN call at most (one image always goes)
        self._mtcnn = None

    def load(self) -> None:
        """Load TensorFlow and MTCNN's networks now rather than on the first `detect`."""
        self._model()

    def _model(self):
        if self._mtcnn is None:
            quiet_tensorflow()
            from mtcnn import MTCNN

            self._mtcnn = as_graphs(MTCNN(device="CPU:0"))
        return self._mtcnn

    def detect(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces found in each image, best score first, in the pixel coordinates of that image."""
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
                found = self._detect_equal([self._scaled(images[i], w, h) for i in chunk])
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
