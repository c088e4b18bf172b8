"""Five-point alignment: a similarity transform maps the landmarks onto a fixed 112x112 template.

Training, evaluation and indexing all use `align`, so the extractor always sees the same geometry.
"""
from __future__ import annotations

import cv2
import numpy as np

from models.faces import Box, Face

CHIP_SIZE = 112

# Where the eyes, nose tip and mouth corners sit in a 112x112 chip. These are the coordinates of the
# widely used 112x112 face template of the ArcFace paper (Deng et al., 2019, insightface).
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the least-squares similarity (rotation, uniform scale, shift) taking src to dst.

    Closed form (Umeyama, 1991) for 2-D points without reflection.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = (sig * np.diag(sign)).sum() / var_s if var_s > 0 else 1.0
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def align(image: np.ndarray, face: Face, size: int = CHIP_SIZE) -> np.ndarray:
    """Cut the (size, size, 3) uint8 RGB chip of `face` out of `image`; the image is left unchanged."""
    matrix = similarity_transform(face.landmarks, TEMPLATE * (size / CHIP_SIZE))
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


def centre_face(width: int, height: int) -> Face:
    """A stand-in face for a photo where no face was found: the template scaled onto the centre square.

    LFW and loose face crops centre the labelled face, so the centre square is the best guess there.
    """
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    # the template fills a 112 square tightly; a loose crop's face takes about its middle 60 %
    inner = side * 0.6
    ox, oy = x0 + (side - inner) / 2, y0 + (side - inner) / 2
    landmarks = (TEMPLATE / CHIP_SIZE * inner + [ox, oy]).astype(np.float32)
    return Face(Box(ox, oy, ox + inner, oy + inner), landmarks, 0.0)
