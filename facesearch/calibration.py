"""A threshold picked on the user's own photos (`facesearch calibrate`), stored in the home as `calibration.json`.

Read by the engine (`facesearch.api`: the threshold in use), written by the toolkit (`facesearch.toolkit.
calibrate`); this module imports neither, so answering never reaches the training toolkit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """A threshold picked on the user's own photos for one model."""

    model_version: str
    threshold: float  # cosine distance: `distance < threshold` means the same person
    far: float  # target false-accept rate the threshold was picked for
    tar: float  # true-accept rate measured at that threshold on the same photos
    far_measured: float  # false-accept rate actually measured at that threshold
    pairs_same: int
    pairs_different: int
    photos: int
    people: int
    no_face: tuple[str, ...]  # photos left out because no face was found
    created: str
    note: str = ""
    # the threshold at `far` on these photos, and its 95 % interval from a bootstrap over the people; the
    # stored `threshold` is the interval's cautious end (calibrations from before 2026-12-03: the estimate)
    estimate: float | None = None
    interval: tuple[float, float] | None = None

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["no_face"] = list(self.no_face)
        return json.dumps(d, indent=2)


def read_calibration(home: Path, model_version: str) -> Calibration | None:
    """The calibration stored in `home` for `model_version`, or None (none stored, or for another model)."""
    f = Path(home) / CALIBRATION_FILE
    if not f.exists():
        return None
    raw = json.loads(f.read_text())
    if raw.get("model_version") != model_version:
        return None
    raw["no_face"] = tuple(raw.get("no_face", ()))
    if raw.get("interval") is not None:
        raw["interval"] = tuple(raw["interval"])
    return Calibration(**raw)
