"""Shared fixtures: where the face data lives, LFW photos by person, the test double of the extractor, and
the shipped extractor (tests that need it are skipped, with the reason, until its weights exist)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from fakes import FakeExtractor
from models.extractor import DEFAULT_MODEL

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data")).resolve()
LFW = DATA / "lfw" / "images"


def lfw_photos(name: str) -> list[Path]:
    """The LFW photos of one person, in file order."""
    photos = sorted((LFW / name).glob("*.jpg"))
    if not photos:
        pytest.skip(f"no LFW photos of {name} under {LFW} (set FACESEARCH_DATA to the shared data folder)")
    return photos


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not LFW.is_dir():
        pytest.skip(f"face data not found at {DATA}: set FACESEARCH_DATA to the shared data folder")
    return DATA


@pytest.fixture
def fake_extractor() -> FakeExtractor:
    return FakeExtractor()


@pytest.fixture
def fake_models(monkeypatch, fake_extractor, detector):
    """The API's extractor replaced by the test double (the real detector stays); returns the double."""
    from facesearch import api

    monkeypatch.setattr(api, "load_extractor", lambda config: fake_extractor)
    return fake_extractor


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    """The path of the shipped extractor's weights. They are committed, so their absence fails the test."""
    if not DEFAULT_MODEL.exists() or not DEFAULT_MODEL.with_suffix(".json").exists():
        pytest.fail(f"the shipped extractor is missing: {DEFAULT_MODEL} (and its .json)")
    return DEFAULT_MODEL


@pytest.fixture(scope="session")
def detector(tmp_path_factory):
    """The real MTCNN detector, the same instance the API uses (loaded once per test session)."""
    from facesearch import api
    from facesearch.config import load_config

    return api.load_detector(load_config(home=tmp_path_factory.mktemp("detector-home"), env={}))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests choose their home with --home; settings from the shell running them must not leak in."""
    for name in ("FACESEARCH_HOME", "FACESEARCH_DB", "FACESEARCH_MODEL"):
        monkeypatch.delenv(name, raising=False)
