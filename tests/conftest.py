"""Shared fixtures: where the face data lives, LFW photos by person, the test double of the extractor, and
the shipped extractor (tests that need it are skipped, with the reason, until its weights exist)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
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
    from facesearch import build, home
    from indexer import EnrolCheck

    monkeypatch.setattr(home, "load_extractor", lambda config: fake_extractor)
    # The double's vectors do not tell people apart, so `enroll` would find every face in doubt: its check is
    # forced here (faces in doubt are enrolled and reported). tests/test_enrolment_checks.py tests the check
    # with the shipped extractor.
    monkeypatch.setattr(build, "EnrolCheck", lambda threshold, k, force: EnrolCheck(threshold, k, force=True))
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


# -- PostgreSQL --------------------------------------------------------------------------------------------------
# The storage tests run on SQLite and on PostgreSQL. `.ci/run` starts a server and names it in
# FACESEARCH_TEST_POSTGRES (an SQLAlchemy URL without a database name); without it, a throwaway server is started
# here when PostgreSQL's programs are installed (initdb, pg_ctl), and those tests are skipped when they are not.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres_user(command: list[str]) -> list[str]:
    # the server refuses to run as root; the image has a postgres user for it
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_server():
    """The SQLAlchemy URL of a PostgreSQL server for tests, without a database name."""
    url = os.environ.get("FACESEARCH_TEST_POSTGRES")
    if url:
        yield url.rstrip("/")
        return
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("PostgreSQL tests need psycopg: pip install -e '.[test]'")
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl); set FACESEARCH_TEST_POSTGRES to use a server")
    # not under pytest's own temporary folder: that one is private to the user running the tests
    root = Path(tempfile.mkdtemp(prefix="facesearch-test-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    subprocess.run(_as_postgres_user(["initdb", "-D", str(data), "-A", "trust", "-U", "facesearch"]), check=True,
                   capture_output=True)
    subprocess.run(_as_postgres_user(["pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                                      f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://facesearch@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres_user(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_database(server: str) -> str:
    """Create an empty database on the test server; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"fs_test_{uuid.uuid4().hex[:12]}"
    u = make_url(server)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database for one test: an SQLite file, or a new database on the test PostgreSQL server."""
    from db import sqlite_url

    if request.param == "sqlite":
        return sqlite_url(tmp_path / "facesearch.db")
    return new_postgres_database(request.getfixturevalue("postgres_server"))
