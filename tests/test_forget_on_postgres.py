"""`forget` on PostgreSQL leaves no row version of the person in the table files: the tables it touched are
rewritten (VACUUM FULL), checked by reading the server's files themselves (issue 23, item 3)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from conftest import lfw_photos, new_postgres_database
from facesearch.cli import cli

NAME = "Zebulon Quarterfield"  # a name no other byte sequence of the tables will hold by chance


def table_bytes(url: str, tables: tuple[str, ...]) -> bytes:
    """The bytes of the tables' current files (every 1 GB segment), after a checkpoint wrote them to disk."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
            data = Path(conn.execute(text("SHOW data_directory")).scalar())
            files = [data / conn.execute(text("SELECT pg_relation_filepath(:t)"), {"t": t}).scalar() for t in tables]
    finally:
        engine.dispose()
    out = b""
    for f in files:
        if not os.access(f, os.R_OK):
            pytest.skip(f"the server's files cannot be read by this user ({f})")
        for segment in sorted(f.parent.glob(f.name + "*")):
            if segment.name == f.name or segment.name.startswith(f.name + "."):
                out += segment.read_bytes()
    return out


def run(home, url: str, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "--db", url, *map(str, args)])


def test_forget_leaves_no_row_of_the_person_in_the_table_files(tmp_path, data_dir, fake_models, postgres_server):
    url = new_postgres_database(postgres_server)
    home = tmp_path / "home"
    assert run(home, url, "enroll", "--force", NAME, *lfw_photos("Hans_Blix")[:2]).exit_code == 0
    assert run(home, url, "enroll", "--force", "Someone Else", lfw_photos("Laura_Bush")[0]).exit_code == 0
    tables = ("people",)
    assert NAME.encode() in table_bytes(url, tables)  # the check can see a name in the files
    gone = run(home, url, "forget", NAME, "--yes")
    assert gone.exit_code == 0 and "could not be vacuumed" not in gone.stderr, gone.output
    files = table_bytes(url, tables)
    assert NAME.encode() not in files
    assert b"Someone Else" in files  # the others are still there


def test_a_vacuum_refused_is_said_with_what_to_do(tmp_path, data_dir, fake_models, postgres_server, monkeypatch):
    import indexer.gallery

    monkeypatch.setattr(indexer.gallery, "vacuum_deleted_rows", lambda engine, tables: "must be owner of table people")
    url = new_postgres_database(postgres_server)
    home = tmp_path / "home"
    assert run(home, url, "enroll", "--force", NAME, lfw_photos("Hans_Blix")[0]).exit_code == 0
    gone = run(home, url, "forget", NAME, "--yes")
    assert gone.exit_code == 0 and "1 enrolled faces removed" in gone.stdout
    assert "could not be vacuumed (must be owner of table people)" in gone.stderr and "VACUUM FULL" in gone.stderr
