"""MTCNN's three-network cascade (P-Net proposals, R-Net refinement, O-Net boxes and landmarks) on ONNX Runtime.

The steps between the networks follow the `mtcnn` 1.0.0 package step by step (its image pyramid, its box
regression before non-maximum suppression, its NMS, which lets a box that was itself suppressed suppress
later ones, its crops normalised by the image size), so that faces, scores and landmarks are the ones that
package gives: tests/test_models_detect.py compares the two on real photos. Its TensorFlow image operations
are replaced by OpenCV's area resize (equal to TensorFlow's to 2e-6 on this project's machine) and a NumPy
bilinear crop written to TensorFlow's `crop_and_resize` rules. Only the networks' weights come from the
package's files; TensorFlow is never imported.

Rows travel as float arrays `[image, x0, y0, x1, y1, score]`, plus ten landmark columns (five x, then five y)
after O-Net.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from models import runtime
from models.graphs import cached_mtcnn_graph

PNET_THRESHOLD, RNET_THRESHOLD, ONET_THRESHOLD = 0.6, 0.7, 0.8
PNET_NMS_SCALE, PNET_NMS_ALL, RNET_NMS, ONET_NMS = 0.5, 0.7, 0.7, 0.7
SCALE_FACTOR = 0.709
CELL, STRIDE = 12, 2
PNET_MIN_SIDE = 11  # P-Net's valid convolutions leave one output cell at 11 px, none below


class Cascade:
    """The three networks, loaded once; `detect` takes equal-size uint8 RGB images."""

    def __init__(self, graph_cache: Path | None = None):
        """`graph_cache`: a folder where the networks' ONNX graphs are kept once built (`cached_mtcnn_graph`);
        None builds them in memory."""
        self.pnet, self.rnet, self.onet = (_session(name, graph_cache) for name in ("pnet", "rnet", "onet"))
        # The pyramid's area resizes run on one core each; two at a time took 15 ms instead of 23 for the
        # eleven levels of a 1280x720 copy on this project's 2-core machine.
        self._resizers = ThreadPoolExecutor(max(1, runtime.threads()), thread_name_prefix="facesearch-pyramid")

    def detect(self, images: list[np.ndarray], min_face_px: int = 20) -> np.ndarray:
        """(k, 16) rows for the faces of all the images: image index, box x0 y0 x1 y1, score, 5 x and 5 y
        of the landmarks (left eye, right eye, nose, left and right mouth corner), in image pixels."""
        # Pixels stay 0..255 here and are normalised to the networks' [-1, 1] after each resize and crop, on
        # the smaller arrays: both are linear, so the values are the same (to float rounding).
        pixels = np.stack(images)
        rows = self._proposals(pixels.astype(np.float32), min_face_px)
        if len(rows) == 0:
            return rows
        packed = pack(pixels)
        rows = self._refine(packed, rows)
        if len(rows):
            rows = self._output(packed, rows)
        if len(rows):
            h, w = pixels.shape[1:3]
            rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, w - 1)
            rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, h - 1)
        return rows

    def _proposals(self, batch: np.ndarray, min_face_px: int) -> np.ndarray:
        h, w = batch.shape[1:3]
        found = []
        # sizes truncated, as TensorFlow's resize truncates them; mtcnn 1.0.0 fails on a level under P-Net's
        # smallest input and then reports no face at all for the whole call (why it finds nothing with
        # min_face_size from 30 up): here such a level is skipped
        levels = [(scale, int(h * scale), int(w * scale)) for scale in pyramid(w, h, min_face_px)]
        levels = [(scale, sh, sw) for scale, sh, sw in levels if min(sh, sw) >= PNET_MIN_SIDE]

        def scaled(level):
            _, sh, sw = level
            return normalised(np.stack([cv2.resize(im, (sw, sh), interpolation=cv2.INTER_AREA) for im in batch]))

        for (scale, _, _), level in zip(levels, self._resizers.map(scaled, levels)):
            offsets, probs = self.pnet.run(None, {"image": level})
            rows = grid_boxes(offsets, probs, PNET_THRESHOLD)
            rows[:, 1:5] /= scale
            found.append(nms(rows, PNET_NMS_SCALE, sort=False))
        if not found:
            return np.empty((0, 6))
        return square(nms(np.concatenate(found), PNET_NMS_ALL))

    def _refine(self, packed: np.ndarray, rows: np.ndarray) -> np.ndarray:
        offsets, probs = self.rnet.run(None, {"image": crop_and_resize(packed, rows, 24)})
        rows = rows.copy()
        rows[:, 5] = probs[:, 1]
        rows = shift_boxes(rows, offsets)
        rows = rows[rows[:, 5] > RNET_THRESHOLD]
        return square(nms(rows, RNET_NMS))

    def _output(self, packed: np.ndarray, rows: np.ndarray) -> np.ndarray:
        offsets, landmarks, probs = self.onet.run(None, {"image": crop_and_resize(packed, rows, 48)})
        w = rows[:, 3:4] - rows[:, 1:2] + 1
        h = rows[:, 4:5] - rows[:, 2:3] + 1
        points = np.concatenate([w * landmarks[:, :5] + rows[:, 1:2] - 1, h * landmarks[:, 5:] + rows[:, 2:3] - 1],
                                axis=1)
        rows = rows.copy()
        rows[:, 5] = probs[:, 1]
        rows = np.concatenate([shift_boxes(rows, offsets), points], axis=1)
        rows = rows[rows[:, 5] > ONET_THRESHOLD]
        return nms(rows, ONET_NMS, overlap="min")


def _session(name: str, graph_cache: Path | None):
    """A session of one network, from its kept graph; a kept graph ONNX Runtime cannot load is built again."""
    try:
        return runtime.session(cached_mtcnn_graph(name, graph_cache))
    except Exception:
        if graph_cache is None:
            raise
        return runtime.session(cached_mtcnn_graph(name, graph_cache, rebuild=True))


def normalised(pixels: np.ndarray) -> np.ndarray:
    """0..255 pixel values to MTCNN's input range, (v - 127.5) / 128."""
    return (pixels - np.float32(127.5)) * np.float32(1 / 128)


def pyramid(width: int, height: int, min_face_px: int, min_size: int = CELL) -> np.ndarray:
    """The scales P-Net sees the image at: the first maps a face of `min_face_px` to P-Net's 12 px window.

    As mtcnn 1.0.0 counts them: the number of scales depends on the image alone, not on `min_face_px`."""
    count = round(-(np.log(min(width, height) / min_size) / np.log(SCALE_FACTOR) + 1))
    return (min_size / min_face_px) * SCALE_FACTOR ** np.arange(count)


def grid_boxes(offsets: np.ndarray, probs: np.ndarray, threshold: float) -> np.ndarray:
    """P-Net's output cells over `threshold` as rows, in the scaled image's pixels, best first.

    A cell at (y, x) covers pixels 2y+1 .. 2y+12 (and the same in x); its regression moves each edge by a
    fraction of the 11 px between them."""
    score = probs[..., 1]
    b, y, x = np.where(score > threshold)
    reg = offsets[b, y, x].astype(np.float64)
    x0, y0 = x * STRIDE + 1, y * STRIDE + 1
    x1, y1 = x * STRIDE + CELL, y * STRIDE + CELL
    side = CELL - 1
    rows = np.stack([b, x0 + reg[:, 0] * side, y0 + reg[:, 1] * side, x1 + reg[:, 2] * side,
                     y1 + reg[:, 3] * side, score[b, y, x]], axis=1).astype(np.float64)
    return rows[np.argsort(rows[:, 5])[::-1]]


def overlaps(boxes: np.ndarray, overlap: str = "union") -> np.ndarray:
    """(n, n) intersection over union (or over the smaller box, `min`) of boxes x0 y0 x1 y1."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    iw = np.maximum(0, np.minimum(boxes[None, :, 2], boxes[:, None, 2]) - np.maximum(boxes[None, :, 0], boxes[:, None, 0]))
    ih = np.maximum(0, np.minimum(boxes[None, :, 3], boxes[:, None, 3]) - np.maximum(boxes[None, :, 1], boxes[:, None, 1]))
    inter = iw * ih
    if overlap == "union":
        return inter / (area[:, None] + area[None, :] - inter)
    return inter / np.minimum(area[:, None], area[None, :])


def nms(rows: np.ndarray, threshold: float, overlap: str = "union", sort: bool = True) -> np.ndarray:
    """Rows kept by mtcnn 1.0.0's suppression, image by image: a row goes when any row before it (by score,
    when `sort`) overlaps it more than `threshold`, whether or not that earlier row was itself kept."""
    if sort:
        rows = rows[np.argsort(rows[:, 5])[::-1]]
    kept = []
    for image in np.unique(rows[:, 0]):
        mine = rows[rows[:, 0] == image]
        over = np.triu(overlaps(mine[:, 1:5], overlap) > threshold, k=1)
        kept.append(mine[~over.any(axis=0)])
    return np.concatenate(kept) if kept else np.empty((0, rows.shape[1]))


def square(rows: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres, side the longer of width and height."""
    rows = rows.copy()
    w, h = rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]
    side = np.maximum(w, h)
    rows[:, 1] += w * 0.5 - side * 0.5
    rows[:, 2] += h * 0.5 - side * 0.5
    rows[:, 3] = rows[:, 1] + side
    rows[:, 4] = rows[:, 2] + side
    return rows


def shift_boxes(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Box edges moved by a network's offsets, in units of the box's width and height (plus one pixel)."""
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1] + 1
    h = rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([w, h, w, h], axis=1)
    return rows


def pack(pixels: np.ndarray) -> np.ndarray:
    """(b, h, w, 3) uint8 RGB as (b, h, w) uint32, one pixel per number (its fourth byte zero).

    The crops below gather single pixels from anywhere in the images: one 4-byte number per pixel is the
    fastest gather NumPy has, about six times faster than rows of three floats from the float copy. The
    values are the same: the float copy holds the same whole numbers 0..255."""
    b, h, w, _ = pixels.shape
    four = np.zeros((b, h, w, 4), np.uint8)
    four[..., :3] = pixels
    return four.view(np.uint32)[..., 0]


def crop_and_resize(packed: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size, 3) bilinear crops of the rows' boxes from the images' pixels (`pack`), normalised, zero
    outside the image.

    The rules of TensorFlow's `crop_and_resize`, with the boxes normalised as mtcnn 1.0.0 normalises them
    (by the image's width and height, while the sampling spans width - 1 and height - 1)."""
    _, h, w = packed.shape
    image = rows[:, 0].astype(np.int64)
    norm = (rows[:, 1:5] / np.array([w, h, w, h])).astype(np.float32)
    steps = np.arange(size, dtype=np.float32)
    ys = norm[:, 1:2] * (h - 1) + steps * ((norm[:, 3:4] - norm[:, 1:2]) * (h - 1) / (size - 1))
    xs = norm[:, 0:1] * (w - 1) + steps * ((norm[:, 2:3] - norm[:, 0:1]) * (w - 1) / (size - 1))
    inside = ((ys >= 0) & (ys <= h - 1))[:, :, None] & ((xs >= 0) & (xs <= w - 1))[:, None, :]
    fy0, fx0 = np.floor(ys), np.floor(xs)
    y0 = np.clip(fy0, 0, h - 1).astype(np.int64)
    x0 = np.clip(fx0, 0, w - 1).astype(np.int64)
    y1 = np.clip(np.ceil(ys), 0, h - 1).astype(np.int64)
    x1 = np.clip(np.ceil(xs), 0, w - 1).astype(np.int64)
    fy = (ys - fy0)[:, :, None, None]
    fx = (xs - fx0)[:, None, :, None]
    flat = packed.reshape(-1)
    top_row = ((image[:, None] * h + y0) * w)[:, :, None]
    bottom_row = ((image[:, None] * h + y1) * w)[:, :, None]
    left, right = x0[:, None, :], x1[:, None, :]

    def gathered(index: np.ndarray) -> np.ndarray:
        return flat.take(index).view(np.uint8).reshape(*index.shape, 4)[..., :3].astype(np.float32)

    top = gathered(top_row + left)
    top += (gathered(top_row + right) - top) * fx
    bottom = gathered(bottom_row + left)
    bottom += (gathered(bottom_row + right) - bottom) * fx
    crops = normalised(top + (bottom - top) * fy)
    crops[~inside] = 0
    return crops
