"""The exploratory dataset report, on ~40 real training photos of four identities through the real MTCNN
detector, plus a blank and a broken photo; and its pieces (yaw, roll, chip quality, sampling) by hand."""
from __future__ import annotations

import doctest
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models.training.report
from conftest import DATA
from models.training.datasets import load_folders
from models.detect import Detector
from models.training.report import ATTRIBUTES, CSV_COLUMNS, build_report, roll_degrees, sample_indices, yaw_ratio

TRAIN = DATA / "train"
# identity -> photos copied: CelebA in the wild, Pins celebrities, ORL laboratory photos
PLAN = {"celeba-10001": 12, "celeba-10007": 10, "pins-alex_lawther": 10, "orl-s1": 8}
REAL = sum(PLAN.values())


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path]:
    """Build the report once: returns (dataset folder, report.md)."""
    if not TRAIN.is_dir():
        pytest.skip(f"training photos not found at {TRAIN}: set FACESEARCH_DATA to the shared data folder")
    root = tmp_path_factory.mktemp("dataset")
    for identity, count in PLAN.items():
        (root / identity).mkdir()
        for photo in sorted((TRAIN / identity).glob("*.jpg"))[:count]:
            shutil.copy(photo, root / identity / photo.name)
    (root / "odd-one").mkdir()
    from PIL import Image

    Image.new("RGB", (100, 120), (128, 128, 128)).save(root / "odd-one" / "blank.png")
    (root / "odd-one" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path_factory.mktemp("report")
    return root, build_report(load_folders(root), out, detector=Detector())


def test_report_writes_every_file_and_the_page_shows_every_plot(report):
    _, page = report
    out = page.parent
    assert page.name == "report.md"
    pngs = sorted(p.name for p in out.glob("*.png"))
    expected = {"photos_per_identity.png", "correlation.png"} | {f"hist_{a.column}.png" for a in ATTRIBUTES}
    assert set(pngs) == expected
    text = page.read_text()
    for name in pngs:
        assert (out / name).stat().st_size > 1000 and (out / name).read_bytes()[:4] == b"\x89PNG"
        assert f"]({name})" in text, f"report.md does not show {name}"
    assert not list(out.glob(".*.tmp"))
    # the per-identity summary: 5 identities of 12, 10, 10, 8 and 2 photos
    assert "| 5 | 42 | 8.4 | 10 | 2 | 12 | 5 | 4 |" in text


def test_csv_has_one_row_per_photo_with_the_documented_columns(report):
    root, page = report
    table = pd.read_csv(page.parent / "faces.csv", keep_default_na=True)
    assert tuple(table.columns) == CSV_COLUMNS
    assert len(table) == REAL + 2
    assert sorted(set(table.identity)) == sorted([*PLAN, "odd-one"])
    assert {Path(p).name for p in table.path} == {p.name for p in root.rglob("*") if p.is_file()}


def test_faces_are_found_and_their_attributes_are_sane(report):
    _, page = report
    table = pd.read_csv(page.parent / "faces.csv")
    real = table[table.identity != "odd-one"]
    found = real[real.found]
    assert len(found) >= 0.9 * REAL
    longest_side = found[["photo_width_px", "photo_height_px"]].max(axis=1)
    assert (found.face_px > 20).all() and (found.face_px <= 1.3 * longest_side).all()
    assert found.score.between(0.9, 1.0).all()
    assert (found.roll_deg.abs() <= 45).mean() >= 0.9
    assert (found.yaw.abs() <= 0.5).mean() >= 0.9
    assert found.brightness.between(0, 255).all() and found.contrast.between(0, 128).all()
    assert (found.sharpness > 0).all()
    assert (found.faces >= 1).all()
    # rows without a face have empty attributes
    assert table[~table.found][[a.column for a in ATTRIBUTES]].isna().all().all()


def test_photos_without_a_face_are_listed_with_the_reason(report):
    _, page = report
    table = pd.read_csv(page.parent / "faces.csv")
    odd = {Path(row.path).name: row for row in table.itertuples() if row.identity == "odd-one"}
    assert not odd["blank.png"].found and odd["blank.png"].reason.startswith("no face found by MTCNN")
    assert not odd["broken.jpg"].found and odd["broken.jpg"].reason.startswith("unreadable:")
    assert odd["broken.jpg"].photo_width_px == 0
    text = page.read_text()
    section = text.split("## Photos with no face")[1].split("##")[0]
    assert re.search(r"\| odd-one/blank.png \| odd-one \| no face found by MTCNN", section)
    assert re.search(r"\| odd-one/broken.jpg \| odd-one \| unreadable: .*broken.jpg", section)


class NoFaces:
    """A detector double that finds nothing, and counts what it was shown."""

    min_score, min_face_px = 0.9, 20

    def __init__(self):
        self.shown: list[tuple[int, ...]] = []

    def detect(self, images):
        self.shown += [im.shape for im in images]
        return [[] for _ in images]


def test_sampled_report_without_any_face(tmp_path):
    if not TRAIN.is_dir():
        pytest.skip(f"training photos not found at {TRAIN}")
    ds = load_folders(TRAIN).subset({"celeba-10001", "orl-s1"})
    detector = NoFaces()
    page = build_report(ds, tmp_path / "a", detector=detector, max_photos=7, seed=3)
    again = build_report(ds, tmp_path / "b", detector=NoFaces(), max_photos=7, seed=3)
    a, b = pd.read_csv(page.parent / "faces.csv"), pd.read_csv(again.parent / "faces.csv")
    assert len(a) == 7 and list(a.path) == list(b.path) and not a.found.any()
    # photos of at most 192 px were detected on one 192 x 192 canvas, so they batch together
    assert set(detector.shown) == {(192, 192, 3)}
    text = page.read_text()
    assert "a seeded sample of 7 photos (seed 3)" in text and "MTCNN found a face in 0 of 7" in text
    assert "| `face_px` | pixels | 0 |" in text


def test_yaw_and_roll_by_hand():
    """A frontal face, eyes at (30, 40) and (70, 40): inter-ocular distance 40 px, eye midpoint (50, 40).
    Nose at x = 50: yaw 0; at x = 60: 10 / 40 = 0.25. Rotating the whole face by 30 degrees changes roll by 30
    and leaves yaw as it was; scaling it changes neither."""
    face = np.array([[30, 40], [70, 40], [60, 60], [35, 80], [65, 80]], float)
    assert yaw_ratio(face) == pytest.approx(0.25) and roll_degrees(face) == pytest.approx(0.0)
    t = np.radians(30)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    turned = (face - 50) @ rot.T * 2.5 + 100
    assert yaw_ratio(turned) == pytest.approx(0.25) and roll_degrees(turned) == pytest.approx(30.0)
    mirrored = face * [-1, 1] + [100, 0]  # the eyes swap sides: relabel them left and right again
    mirrored[[0, 1]] = mirrored[[1, 0]]
    assert yaw_ratio(mirrored) == pytest.approx(-0.25)


def test_sampling_is_seeded_and_in_dataset_order():
    a, b, c = sample_indices(1000, 50, 1), sample_indices(1000, 50, 1), sample_indices(1000, 50, 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a.tolist())) == 50 and (np.diff(a) > 0).all()
    assert sample_indices(10, 50, 1).tolist() == list(range(10))
    with pytest.raises(ValueError, match="max_photos must be at least 1"):
        sample_indices(10, 0, 1)


def test_docstring_examples():
    assert doctest.testmod(models.training.report).failed == 0
