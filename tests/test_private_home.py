"""A home is private whatever the umask: folder 0700, database, index, lock and exports 0600; a loosened home
is reported once by the commands and made private by `check --repair` (indexer/private.py)."""
from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from conftest import lfw_photos
from facesearch.cli import cli


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *map(str, args)])


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """The loosest usual umask: files 0666 and folders 0777 unless facesearch says otherwise."""
    old = os.umask(0o000)
    yield
    os.umask(old)


def test_a_home_is_private_whatever_the_umask(tmp_path, data_dir, fake_models, open_umask):
    home = tmp_path / "home"
    assert run(home, "enroll", "Hans_Blix", *lfw_photos("Hans_Blix")[:2]).exit_code == 0
    assert run(home, "index", lfw_photos("Laura_Bush")[0]).exit_code == 0
    assert mode(home) == 0o700
    files = sorted(p.name for p in home.iterdir())
    assert {"facesearch.db", "faces.faiss", "faces.faiss.json", "facesearch.lock"} <= set(files), files
    for name in files:
        assert mode(home / name) == 0o600, (name, oct(mode(home / name)))
    out = tmp_path / "export"
    assert run(home, "export", out).exit_code == 0
    for p in out.iterdir():
        assert mode(p) == 0o600, p
    checked = run(home, "check", "--no-files")
    assert checked.exit_code == 0 and "other users" not in checked.output, checked.output


def test_a_loose_home_is_reported_once_and_made_private_by_check_repair(tmp_path, data_dir, fake_models):
    home = tmp_path / "home"
    assert run(home, "enroll", "Hans_Blix", *lfw_photos("Hans_Blix")[:2]).exit_code == 0
    os.chmod(home, 0o755)
    os.chmod(home / "facesearch.db", 0o644)
    people = run(home, "people", "--json")
    assert people.exit_code == 0 and json.loads(people.stdout.splitlines()[0])["name"] == "Hans_Blix"
    assert people.stderr.count("other users may read it") == 1  # once, though the home is opened twice
    assert "the folder (0755), facesearch.db (0644)" in people.stderr and f"--home {home} check --repair" in people.stderr
    found = run(home, "check", "--no-files")
    assert found.exit_code == 1 and "private: other users may read" in found.stdout
    repaired = run(home, "check", "--no-files", "--repair")
    assert repaired.exit_code == 1 and "made private" in repaired.stdout
    assert "other users may read it" not in repaired.stderr  # no advice to run the command that is running
    assert mode(home) == 0o700 and mode(home / "facesearch.db") == 0o600
    again = run(home, "check", "--no-files")
    assert again.exit_code == 0 and "other users" not in again.output
    assert "other users" not in run(home, "people").stderr
