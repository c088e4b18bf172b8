"""The thresholds in force: `verify`'s one-to-one threshold (`threshold_in_use`: `--threshold`, else the
user's calibration, else the model's) and the threshold `who`, `search`, `people` and `export` name faces with,
chosen for a share of strangers named (`open_set_threshold`).
"""
from __future__ import annotations

from dataclasses import dataclass

from facesearch import home
from facesearch.config import Config
from indexer import Gallery
from indexer.pipeline import FaceExtractor


def threshold_in_use(config: Config, extractor: FaceExtractor) -> tuple[float, float | None, str]:
    """(threshold, the false-accept rate it was calibrated for, where it comes from): `--threshold` first,
    then a calibration on the user's own photos stored in the home (`facesearch calibrate`), then the
    model's own. A threshold given by hand has no known false-accept rate (None)."""
    if config.threshold is not None:
        return config.threshold, None, "given by hand"
    from facesearch.calibration import read_calibration

    cal = read_calibration(config.home, extractor.version)
    if cal is not None:
        return cal.threshold, cal.far, f"calibrated on your photos ({cal.created})"
    return extractor.info.threshold, extractor.info.threshold_far, "the model's"


def threshold(config: Config, extractor: FaceExtractor) -> float:
    return threshold_in_use(config, extractor)[0]


@dataclass(frozen=True)
class OpenSetThreshold:
    """The threshold `who`, `search`, `people` and `export` name faces with, and what it means."""

    threshold: float
    stranger_rate: float | None  # the share of strangers it names as someone (None: not known)
    references: int  # reference faces a stranger is compared with
    people: int
    source: str  # how it was chosen

    def describe(self) -> str:
        """One line for the user: the threshold and what it means."""
        if self.stranger_rate is None:
            return f"threshold {self.threshold:.4f} ({self.source})"
        if self.references == 0:
            return (f"threshold {self.threshold:.4f}: no one is enrolled yet; it tightens as reference faces are "
                    f"added, to keep about {100 * self.stranger_rate:g} % of strangers named as someone")
        return (f"threshold {self.threshold:.4f}: about {100 * self.stranger_rate:g} % of strangers named as one of "
                f"{self.people} people ({self.references} reference faces); {self.source}")


def open_set_threshold(config: Config, extractor: FaceExtractor, references: int, people: int) -> OpenSetThreshold:
    """The threshold for naming faces among `people` with `references` reference faces in all (docs/library.md,
    "Strangers"). A threshold for one comparison lets strangers through once per reference face, so it is
    chosen for `config.stranger_rate` of strangers named as someone, from the model's false-accept curve
    (`models.thresholds.threshold_for_fpir`): the more reference faces, the stricter. `--threshold` overrides
    it; a calibration on the user's own photos caps it (the stricter of the two); a model without a curve
    (one trained before the curve was measured) keeps its one-to-one threshold."""
    from models.thresholds import threshold_for_fpir

    if config.threshold is not None:
        return OpenSetThreshold(config.threshold, None, references, people, "given by hand")
    curve = extractor.info.extra.get("far_curve")
    if not curve:
        one_to_one, _, source = threshold_in_use(config, extractor)
        return OpenSetThreshold(one_to_one, None, references, people,
                                f"{source} one-to-one threshold: the model has no false-accept curve")
    threshold, _ = threshold_for_fpir(curve, config.stranger_rate, references)
    source = f"from the model's false-accept curve ({curve.get('identities', '?')} held-out people)"
    from facesearch.calibration import read_calibration

    cal = read_calibration(config.home, extractor.version)
    if cal is not None and cal.threshold < threshold:
        threshold, source = cal.threshold, f"capped by your calibration ({cal.created})"
    return OpenSetThreshold(threshold, config.stranger_rate, references, people, source)


def naming_threshold(config: Config, *, extractor: FaceExtractor | None = None) -> OpenSetThreshold | None:
    """The threshold `who` and `search` use in this home now (None when the home has no database yet)."""
    if not home.has_database(config):
        return None
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        return naming_threshold_for(config, extractor, gallery)


def naming_threshold_for(config: Config, extractor: FaceExtractor, gallery: Gallery,
                      person_of: dict[int, str] | None = None) -> OpenSetThreshold:
    """`open_set_threshold` for the reference faces of `gallery` (under the current model)."""
    person_of = gallery.person_faces() if person_of is None else person_of
    return open_set_threshold(config, extractor, len(person_of), len(set(person_of.values())))
