"""Small value types born in `models` that travel the whole way to the user."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the photo as decoded (EXIF orientation applied): x0, y0 inclusive, x1, y1 exclusive."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def scaled(self, factor: float) -> "Box":
        """The same box in a photo `factor` times larger."""
        return Box(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor)

    def as_list(self) -> list[int]:
        return [int(round(v)) for v in (self.x0, self.y0, self.x1, self.y1)]

    def overlap(self, other: "Box") -> float:
        """Intersection over union with `other`: 1 for the same box, 0 for boxes that do not touch."""
        inner = Box(max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1))
        common = inner.area if inner.width > 0 and inner.height > 0 else 0.0
        union = self.area + other.area - common
        return common / union if union > 0 else 0.0


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: its box, five landmarks and the detector's confidence."""

    box: Box
    landmarks: np.ndarray  # (5, 2) float32 x, y: left eye, right eye, nose, left mouth corner, right mouth corner
    score: float  # detector confidence, 0..1

    def scaled(self, factor: float) -> "Face":
        return Face(self.box.scaled(factor), (self.landmarks * factor).astype(np.float32), self.score)
