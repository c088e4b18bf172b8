"""Test doubles. Never shipped: the engine itself only ever uses `models.extractor.Extractor`."""
from __future__ import annotations

import cv2
import numpy as np

from models.align import ARCFACE_112, ChipGeometry
from models.extractor import ModelInfo, normalise


class FakeExtractor:
    """A deterministic stand-in for the trained extractor, for storage and pipeline tests.

    A chip's vector is a fixed random projection of its 16x16 grey thumbnail (mean removed), so identical
    chips get identical vectors and the same face cut from one photo twice gets the same vector.
    """

    def __init__(self, version: str = "fake-test-v1", dim: int = 32, threshold: float = 0.3, seed: int = 0,
                 chip: ChipGeometry = ARCFACE_112):
        self.info = ModelInfo(version=version, dim=dim, threshold=threshold, threshold_far=0.01, chip=chip)
        self._projection = np.random.default_rng(seed).standard_normal((16 * 16, dim)).astype(np.float32)
        self.calls = 0
        self.chip_sides: set[int] = set()  # the side of every chip it was given

    @property
    def version(self) -> str:
        return self.info.version

    def embed(self, chips: np.ndarray) -> np.ndarray:
        self.calls += 1
        chips = np.asarray(chips)
        self.chip_sides |= {chips.shape[1]} if len(chips) else set()
        if len(chips) == 0:
            return np.zeros((0, self.info.dim), np.float32)
        thumbs = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), (16, 16), interpolation=cv2.INTER_AREA)
                           for c in chips]).reshape(len(chips), -1).astype(np.float32)
        thumbs -= thumbs.mean(axis=1, keepdims=True)
        return normalise(thumbs @ self._projection)


def stored_photo(sha256: str, path: str, size_bytes: int, width: int | None = None, height: int | None = None,
                 faces: tuple = (), error: str | None = None):
    """A photo as `index` hands it to the gallery (read, decoded, its faces embedded), for tests that write a
    gallery without photos on disk."""
    from indexer.photos import Photo

    return Photo(path, sha256, size_bytes, width=width, height=height, faces=tuple(faces), error=error)


def enroll_photo(sha256: str, path: str, size_bytes: int, width: int, height: int, face):
    """A photo as `enroll` hands it to the gallery: its one chosen face embedded."""
    return stored_photo(sha256, path, size_bytes, width, height, (face,))
