"""The database layer: tables created on first use, SQLite tuned for sharing, content hashes unique."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from db import INDEXED, PhotoRow, connect, has_tables, session_factory, sqlite_path, sqlite_url


def test_tables_are_created_on_first_use(tmp_path):
    url = sqlite_url(tmp_path / "facesearch.db")
    engine = connect(url)
    assert {"photos", "faces", "people", "model_versions"} <= set(inspect(engine).get_table_names())
    assert has_tables(engine)
    assert sqlite_path(url) == tmp_path / "facesearch.db"
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(tmp_path):
    engine = connect(sqlite_url(tmp_path / "f.db"))
    with engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_a_content_hash_is_stored_once(tmp_path):
    engine = connect(sqlite_url(tmp_path / "f.db"))
    sessions = session_factory(engine)
    with sessions() as s, s.begin():
        s.add(PhotoRow(sha256="ab" * 32, path="/a.jpg", size_bytes=10, status=INDEXED))
    with pytest.raises(IntegrityError):
        with sessions() as s, s.begin():
            s.add(PhotoRow(sha256="ab" * 32, path="/b.jpg", size_bytes=10, status=INDEXED))
    engine.dispose()


def test_other_databases_have_no_file():
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("postgresql://u@host/db") is None
