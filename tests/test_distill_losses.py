"""The two distillation terms: position (1 - cos to the teacher) and relation (pairwise cosines matched)."""
from __future__ import annotations

import numpy as np
import pytest


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def faces():
    rng = np.random.default_rng(0)
    teacher = unit(rng.normal(size=(16, 8)))
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    return teacher, unit(teacher @ rotation.astype(np.float32)), unit(rng.normal(size=(16, 8)))


def test_position_is_zero_only_on_the_teacher(faces):
    from models.training.losses import distill_position_loss

    teacher, rotated, other = faces
    assert float(distill_position_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_position_loss(rotated, teacher)) > 0.3
    assert float(distill_position_loss(other, teacher)) > 0.3


def test_relation_only_asks_for_the_teachers_geometry(faces):
    from models.training.losses import distill_relation_loss

    teacher, rotated, other = faces
    assert float(distill_relation_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    # a rotated copy keeps every pairwise cosine: nothing to learn
    assert float(distill_relation_loss(rotated, teacher)) == pytest.approx(0.0, abs=1e-5)
    s, t = other @ other.T, teacher @ teacher.T
    off = ~np.eye(16, dtype=bool)
    assert float(distill_relation_loss(other, teacher)) == pytest.approx(np.mean((s - t)[off] ** 2), rel=1e-4)
    assert float(distill_relation_loss(other, teacher)) > 0.01
