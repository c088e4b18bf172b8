"""The database layer: tables created on first use, older schemas upgraded in place (on SQLite and on
PostgreSQL), SQLite tuned for sharing, content hashes unique."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from db import (
    INDEXED, SCHEMA_VERSION, Base, PhotoRow, SchemaTooNew, connect, has_tables, schema_version, session_factory,
    sqlite_path, sqlite_url,
)
from db.migrations import prepare


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


VERSION_1_TABLES = {"model_versions", "photos", "people", "faces"}


def version_1_database(url: str) -> None:
    """The tables as facesearch created them before schema versions, with one photo in them."""
    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.create_all(conn, tables=[t for t in Base.metadata.sorted_tables if t.name in VERSION_1_TABLES])
        conn.execute(text("DROP INDEX ix_faces_kind"))
    with session_factory(engine)() as s, s.begin():
        s.add(PhotoRow(sha256="cd" * 32, path="/kept.jpg", size_bytes=10, status=INDEXED))
    engine.dispose()


def face_indexes(engine) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes("faces")}


def test_a_new_database_starts_at_the_current_schema_version(database_url):
    engine = connect(database_url)
    assert schema_version(engine) == SCHEMA_VERSION and "ix_faces_kind" in face_indexes(engine)
    assert has_tables(engine)
    engine.dispose()
    assert schema_version(connect(database_url, create=False)) == SCHEMA_VERSION  # reopened: nothing to do


def test_a_database_from_before_versions_is_upgraded_in_place(database_url):
    version_1_database(database_url)
    engine = create_engine(database_url)
    assert schema_version(engine) == 1 and "ix_faces_kind" not in face_indexes(engine)
    engine.dispose()
    engine = connect(database_url, create=False)  # what every command does when it opens a home
    assert schema_version(engine) == SCHEMA_VERSION and "ix_faces_kind" in face_indexes(engine)
    assert {"clusters", "cluster_faces", "face_rejections"} <= set(inspect(engine).get_table_names())  # version 3
    with session_factory(engine)() as s:
        assert [p.path for p in s.query(PhotoRow)] == ["/kept.jpg"]
    engine.dispose()


def test_an_upgrade_that_fails_midway_keeps_the_last_version_it_completed(database_url):
    version_1_database(database_url)
    engine = create_engine(database_url)
    ran = []

    def v2(conn):
        ran.append(2)
        conn.execute(text("CREATE TABLE extra_two (id INTEGER PRIMARY KEY)"))

    def v3_breaks(conn):
        conn.execute(text("CREATE TABLE extra_three (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("killed during version 3")

    with pytest.raises(RuntimeError, match="version 3"):
        prepare(engine, migrations={2: v2, 3: v3_breaks})
    assert schema_version(engine) == 2  # version 2 committed; version 3 rolled back whole
    assert "extra_three" not in inspect(engine).get_table_names()
    assert prepare(engine, migrations={2: v2, 3: lambda conn: ran.append(3)}) == 3
    assert ran == [2, 3] and schema_version(engine) == 3  # version 2 did not run twice
    with pytest.raises(SchemaTooNew, match="newer than this facesearch"):
        prepare(engine, migrations={2: v2})
    engine.dispose()
