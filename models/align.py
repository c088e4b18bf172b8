"""Five-point alignment: a similarity transform maps the landmarks onto a fixed template of the extractor's chip.

Training, evaluation and indexing all use `align`, so the extractor always sees the same geometry. The geometry
(chip side and template) belongs to the extractor: it is stored in the model's `extractor.json` and read into
`ModelInfo.chip` (`models/extractor.py`), and a change of geometry is a change of model version.

- `DLIB_150`: the shipped extractor's, dlib's face network (`models/training/dlib_port.py`) and its fine-tunes;
- `ARCFACE_112`: the from-scratch baseline networks of the toolkit (`models/training/network.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.faces import Box, Face

CHIP_SIZE = 112  # the baseline's chip side (ARCFACE_112)

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

# Where MTCNN's five points fall in the 150 px chip that dlib's `get_face_chip_details(size=150,
# padding=0.25)` cuts: the mean over 785 training photos (CelebA and Pins, no LFW) of MTCNN's points carried
# into dlib's own chips, measured by `scripts/fit_chip_template.py --photos 800` (seed 0).
DLIB_TEMPLATE = np.array(
    [
        [46.7807, 44.2925],
        [100.4213, 44.1286],
        [73.4922, 77.4173],
        [49.4970, 101.5477],
        [97.3346, 101.3292],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True, eq=False)
class ChipGeometry:
    """The chip an extractor reads: its side in pixels and where the five landmarks are placed in it."""

    name: str  # stored in model metadata and in chip cache folder names
    size: int
    template: np.ndarray  # (5, 2) x, y in chip pixels

    def as_json(self) -> dict:
        return {"name": self.name, "size": self.size, "template": np.round(self.template, 4).tolist()}

    @staticmethod
    def from_json(raw: dict) -> "ChipGeometry":
        template = np.asarray(raw["template"], np.float64)
        if template.shape != (5, 2) or int(raw["size"]) < 16:
            raise ValueError(f"chip geometry {raw!r}: expected a side of at least 16 px and five (x, y) points")
        return ChipGeometry(str(raw["name"]), int(raw["size"]), template)


ARCFACE_112 = ChipGeometry("arcface112", CHIP_SIZE, TEMPLATE)
DLIB_150 = ChipGeometry("dlib150", 150, DLIB_TEMPLATE)
GEOMETRIES = {g.name: g for g in (ARCFACE_112, DLIB_150)}


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


def align(image: np.ndarray, face: Face, geometry: ChipGeometry = ARCFACE_112) -> np.ndarray:
    """Cut the (size, size, 3) uint8 RGB chip of `face` out of `image` for `geometry`; the image is left
    unchanged."""
    import cv2

    matrix = similarity_transform(face.landmarks, geometry.template)
    return cv2.warpAffine(image, matrix, (geometry.size, geometry.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def centre_face(width: int, height: int) -> Face:
    """A stand-in face for a photo where no face was found: the 112 px template scaled onto the centre square.

    LFW and loose face crops centre the labelled face, so the centre square is the best guess there.
    """
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    # the template fills a 112 square tightly; a loose crop's face takes about its middle 60 %
    inner = side * 0.6
    ox, oy = x0 + (side - inner) / 2, y0 + (side - inner) / 2
    landmarks = (TEMPLATE / CHIP_SIZE * inner + [ox, oy]).astype(np.float32)
    return Face(Box(ox, oy, ox + inner, oy + inner), landmarks, 0.0)
