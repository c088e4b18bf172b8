"""A password in `--db` / FACESEARCH_DB never reaches a message, `status`, `--json` output or the export: every
command is run against a server that refuses the connection, and against a live one (issue 23, item 2)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import lfw_photos
from facesearch.cli import cli

SECRET = "S3cr3t-pa55"

# every command that opens the database, with its arguments ({photo}: a real photo, {out}: a fresh folder)
COMMANDS = [
    ["status"], ["status", "--json"], ["people"], ["people", "--json"], ["index", "{photo}"],
    ["enroll", "Ada", "{photo}"], ["who", "{photo}"], ["who", "{photo}", "--json"], ["search", "Ada"],
    ["export", "{out}"], ["check"], ["check", "--repair"], ["forget", "Ada", "--yes"], ["reindex"],
    ["cluster"], ["clusters", "--json"], ["name", "1", "Ada"], ["move", "1", "Ada"], ["reject", "1", "Ada"],
    ["merge", "Ada", "Bob"],
]


def invoke(tmp_path, url: str, args: list[str]):
    photo = lfw_photos("Hans_Blix")[0]
    filled = [a.format(photo=photo, out=tmp_path / "out") for a in args]
    return CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "--db", url, *filled])


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_refused_connection_is_explained_without_the_password(tmp_path, data_dir, fake_models, args):
    url = f"postgresql+psycopg://ada:{SECRET}@127.0.0.1:1/gallery"  # port 1: nothing listens
    result = invoke(tmp_path, url, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert SECRET not in result.output
    assert "ada:***@127.0.0.1:1/gallery" in result.stderr  # the URL is named, its password masked


def test_a_live_database_with_a_password_never_shows_it(tmp_path, data_dir, fake_models, postgres_server):
    from conftest import new_postgres_database

    # the test server trusts every connection, so the password is accepted and ignored
    url = new_postgres_database(postgres_server).replace("facesearch@", f"facesearch:{SECRET}@")
    assert SECRET in url  # else nothing below could show it
    outputs = [invoke(tmp_path, url, args) for args in COMMANDS]
    # an uncaught exception would go to the user's terminal as a traceback, which the runner keeps apart
    assert all(r.exception is None or isinstance(r.exception, SystemExit) for r in outputs)
    assert all(SECRET not in r.output for r in outputs)
    status = json.loads(invoke(tmp_path, url, ["status", "--json"]).stdout)
    assert status["db"].startswith("postgresql+psycopg://facesearch:***@")
    assert invoke(tmp_path, url, ["export", "{out}"]).exit_code == 0
    for f in (tmp_path / "out").iterdir():
        assert SECRET not in f.read_text(), f
