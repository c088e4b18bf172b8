"""The threshold `who` and `search` name faces with: chosen for a share of strangers named as someone, from the
model's false-accept curve, stricter as more reference faces are enrolled (`models.training.metrics`, `facesearch.api`)."""
from __future__ import annotations

import numpy as np
import pytest

from models.training.metrics import far_curve
from models.thresholds import comparisons_far, threshold_for_fpir


def synthetic_pairs(seed: int = 0, people: int = 60, pairs: int = 200_000):
    """Different-person distances whose false-accept rate at a distance t is known: uniform on [0, 1], so the
    rate below t is t."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, people, pairs)
    b = (a + rng.integers(1, people, pairs)) % people
    return rng.random(pairs), a, b


def test_the_curve_reads_the_rate_off_the_distances_with_an_interval():
    d, a, b = synthetic_pairs()
    curve = far_curve(d, a, b, fars=(1e-1, 1e-2, 1e-3), rounds=50)
    assert curve["pairs_different"] == len(d) and curve["identities"] == 60
    for far, t, low, high in zip(curve["far"], curve["threshold"], curve["low"], curve["high"]):
        assert t == pytest.approx(far, rel=0.1)  # uniform distances: the threshold at rate f is about f
        assert low <= t <= high and low < high
        assert np.mean(d < t) <= far  # never more accepted than the rate allows


def test_the_threshold_tightens_as_references_grow():
    curve = {"far": [1e-1, 1e-2, 1e-3, 1e-4], "threshold": [0.4, 0.3, 0.2, 0.1]}
    assert comparisons_far(0.01, 1) == pytest.approx(0.01)
    assert comparisons_far(0.01, 100) == pytest.approx(1.005e-4, rel=1e-3)
    thresholds = [threshold_for_fpir(curve, 0.01, n)[0] for n in (1, 10, 100, 1000, 10 ** 6)]
    assert thresholds[0] == pytest.approx(0.3)
    assert thresholds[1] == pytest.approx(0.2, abs=0.001)
    assert thresholds == sorted(thresholds, reverse=True) and thresholds[-1] == 0.0  # extended, never below 0
    # a looser rate gives a looser threshold
    assert threshold_for_fpir(curve, 0.05, 100)[0] > threshold_for_fpir(curve, 0.01, 100)[0]


def test_who_names_with_the_open_set_threshold_and_says_so(tmp_path, data_dir, shipped_model):
    from conftest import lfw_photos
    from facesearch import api
    from facesearch.config import load_config

    config = load_config(home=tmp_path / "home", env={})
    api.enroll("Colin_Powell", lfw_photos("Colin_Powell")[:3], config)
    small = api.naming_threshold(config)
    api.enroll("Tony_Blair", lfw_photos("Tony_Blair")[:3], config)
    api.enroll("Hans_Blix", lfw_photos("Hans_Blix")[:3], config)
    larger = api.naming_threshold(config)
    assert (small.references, larger.references, larger.people) == (3, 9, 3)
    assert larger.threshold < small.threshold and larger.stranger_rate == 0.01
    assert "1 % of strangers" in larger.describe() and "3 people (9 reference faces)" in larger.describe()
    looser = api.naming_threshold(load_config(home=config.home, env={}, stranger_rate=0.05))
    assert looser.threshold > larger.threshold
    by_hand = api.naming_threshold(load_config(home=config.home, env={}, threshold=0.05))
    assert by_hand.threshold == 0.05 and by_hand.stranger_rate is None
    status = api.status(config)
    assert status.naming_threshold == larger.threshold and status.threshold == api.load_extractor(config).info.threshold
