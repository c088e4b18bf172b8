"""`facesearch check`: drift between the database (the truth), the FAISS index and the photo files, found and
reported with exit code 1, the index repaired with --repair; a damaged index or database explained, never a
traceback. With the test double of the extractor and the real detector."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import lfw_photos
from facesearch import home as home_module
from facesearch.cli import cli
from fakes import FakeExtractor
from indexer import VectorIndex


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *map(str, args)])


@pytest.fixture
def home(tmp_path, data_dir, fake_models):
    """A home with 4 gallery photos indexed (copies in tmp_path/gallery) and one person enrolled."""
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for p in lfw_photos("Laura_Bush")[:4]:
        shutil.copy(p, gallery / p.name)
    home = tmp_path / "home"
    assert run(home, "enroll", "Hans_Blix", *lfw_photos("Hans_Blix")[:2]).exit_code == 0
    result = run(home, "index", gallery)
    assert result.exit_code == 0 and "indexed 4 new photos" in result.stdout, result.output
    return home


def edit_index(home, change) -> list[int]:
    """Apply `change` to the saved index (keeping its description in step, as a stale writer would) and
    return the ids it held before."""
    path = home / "faces.faiss"
    index, sidecar = VectorIndex.load(path)
    ids = sorted(index.ids)
    change(index)
    index.save(path, sidecar.model_version)
    return ids


def test_a_consistent_home_exits_0(home):
    result = run(home, "check")
    assert result.exit_code == 0, result.output
    assert "checked 6 photos" in result.stdout and "consistent" in result.stdout


def test_a_vector_missing_from_the_index_is_found_and_repaired(home):
    ids = edit_index(home, lambda index: index.remove(np.array([3])))
    result = run(home, "check")
    assert result.exit_code == 1, result.output
    assert "1 face vectors of the database are missing from it (face ids 3)" in result.stdout
    assert "check --repair" in result.stdout

    repaired = run(home, "check", "--repair")
    assert repaired.exit_code == 1  # drift was found; it says what it repaired
    assert f"repaired: the index was rebuilt from the database, {len(ids)} vectors" in repaired.stdout
    assert run(home, "check").exit_code == 0
    assert sorted(VectorIndex.load(home / "faces.faiss")[0].ids) == ids


def test_a_vector_extra_in_the_index_is_found_and_repaired(home, fake_extractor):
    edit_index(home, lambda index: index.add(np.array([999]), np.eye(1, fake_extractor.info.dim, dtype=np.float32)))
    result = run(home, "check")
    assert result.exit_code == 1
    assert "1 vectors are no face of the current model in the database (ids 999)" in result.stdout
    run(home, "check", "--repair")
    assert 999 not in VectorIndex.load(home / "faces.faiss")[0].ids
    assert run(home, "check").exit_code == 0


def test_vectors_of_another_model_are_reported(home, monkeypatch):
    newer = FakeExtractor(version="fake-test-v2")
    monkeypatch.setattr(home_module, "load_extractor", lambda config: newer)
    result = run(home, "check")
    assert result.exit_code == 1
    assert "holds vectors of model fake-test-v1, the current model is fake-test-v2" in result.stdout
    assert "faces: " in result.stdout and "facesearch reindex" in result.stdout


def test_photos_gone_or_changed_are_reported(home, tmp_path):
    photos = sorted((tmp_path / "gallery").iterdir())
    photos[0].unlink()
    with open(photos[1], "ab") as f:
        f.write(b"\0" * 10)
    data = bytearray(photos[2].read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes
    photos[2].write_bytes(bytes(data))
    later = photos[2].stat().st_mtime + 60
    os.utime(photos[2], (later, later))
    os.utime(photos[3], (later, later))  # touched only: same bytes, not a change

    result = run(home, "check")
    assert result.exit_code == 1, result.output
    assert f"gone: {photos[0]}" in result.stdout
    assert f"changed: {photos[1]}: size" in result.stdout
    assert f"changed: {photos[2]}: same size, other bytes (sha256 differs)" in result.stdout
    assert str(photos[3]) not in result.stdout
    assert "index:" not in result.stdout  # the index itself is in step
    assert run(home, "check", "--no-files").exit_code == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_a_damaged_index_is_named_with_the_command_that_repairs_it(home, damage):
    path = home / "faces.faiss"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an index at all" * 10)
    else:
        path.unlink()
    result = run(home, "check")
    assert result.exit_code == 1, result.output
    assert f"index: {path} is " in result.stdout and ("damaged" in result.stdout or "missing" in result.stdout)
    assert f"facesearch --home {home} check --repair" in result.stdout
    assert "6 face vectors of the database are missing" in result.stdout

    assert run(home, "check", "--repair").exit_code == 1
    assert run(home, "check").exit_code == 0


def test_other_commands_rebuild_a_damaged_index_and_say_so(home):
    path = home / "faces.faiss"
    path.write_bytes(path.read_bytes()[:100])
    status = run(home, "status")
    assert status.exit_code == 0, status.output
    assert f"{path} was damaged or unreadable; it was rebuilt from the database" in status.stderr
    assert "6 vectors" in status.stdout
    assert run(home, "check").exit_code == 0  # saved again, whole
    who = run(home, "who", lfw_photos("Hans_Blix")[0])
    assert who.exit_code == 0 and "Hans_Blix" in who.stdout


@pytest.mark.parametrize("command", [
    ["check"], ["check", "--repair"], ["status"], ["status", "--json"], ["people"], ["index", "{photo}"],
    ["who", "{photo}"], ["search", "Hans_Blix"], ["enroll", "Ada", "{photo}"], ["forget", "Ada", "--yes"],
])
def test_a_damaged_database_is_named_and_exits_2(home, command):
    db = home / "facesearch.db"
    for extra in home.glob("facesearch.db-*"):  # the write-ahead log would bring pages back
        extra.unlink()
    db.write_bytes(np.random.default_rng(0).bytes(8192))
    photo = lfw_photos("Hans_Blix")[0]
    result = run(home, *[a.format(photo=photo) for a in command])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert f"{db} is damaged or is not a facesearch database" in result.stderr
    assert "Traceback" not in result.output


def test_check_on_an_empty_home_says_so(tmp_path, fake_models):
    result = run(tmp_path / "home", "check")
    assert result.exit_code == 2 and "holds no facesearch database yet" in result.stderr
