"""The threshold that names faces for a share of strangers: read off the model's false-accept curve at run time.

The curve itself is measured by the training toolkit (`models.training.metrics.far_curve`,
`scripts/calibrate_curve.py`) and stored in the model's `extractor.json`.
"""
from __future__ import annotations

import numpy as np


def comparisons_far(fpir: float, comparisons: int) -> float:
    """The false-accept rate per comparison at which a stranger compared with `comparisons` reference faces
    is taken for someone with probability `fpir`, were the comparisons independent: 1 - (1 - fpir)^(1/n).
    Faces of one person are alike, so a stranger's comparisons with them are not independent and the true
    rate is lower: the rule errs on the cautious side (docs/library.md, "Strangers")."""
    return 1.0 - (1.0 - fpir) ** (1.0 / max(1, int(comparisons)))


def threshold_for_fpir(curve: dict, fpir: float, comparisons: int) -> tuple[float, float]:
    """(threshold, per-comparison false-accept rate) that names about a share `fpir` of strangers as one of
    `comparisons` reference faces: `curve` (`far_curve`) at that rate, interpolated on the log of the rate;
    below the curve's last rate, extended along its last segment (never below 0).

    The curve's point estimate, not the cautious end of its interval: on LFW galleries of 1,000 people the
    cautious end let 0.31 % of strangers through for a target of 1 % (and named 47 % of known faces against
    62 %), the point estimate 1.06 % (`bench/library_quality.py`, docs/library.md, "Strangers")."""
    far = comparisons_far(fpir, comparisons)
    xs = np.log10(np.asarray(curve["far"], np.float64))[::-1]  # increasing
    ys = np.asarray(curve["threshold"], np.float64)[::-1]
    x = np.log10(far)
    if x >= xs[-1]:
        return float(ys[-1]), far
    if x <= xs[0]:
        slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        return float(max(0.0, ys[0] + slope * (x - xs[0]))), far
    return float(np.interp(x, xs, ys)), far
