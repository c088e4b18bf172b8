"""`index` on folders that fight back (issue 23, item 4): a symbolic link loop (each folder walked once), a
folder that cannot be listed, a FIFO and a device (skipped, never opened): each is reported and the photos
beside it are indexed."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
import signal

import pytest
from click.testing import CliRunner

from conftest import lfw_photos
from facesearch.cli import cli
from indexer.scan import scan
from models.image import read_image


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *map(str, args)])


@pytest.fixture
def deadline():
    """Fail instead of hanging: a test that blocks on a FIFO is stopped after 120 s."""
    def expired(signum, frame):
        raise TimeoutError("blocked: index opened something it should have skipped")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_a_symlink_loop_is_walked_once(tmp_path, data_dir, fake_models, deadline):
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    shutil.copy(lfw_photos("Hans_Blix")[0], root / "a" / "one.jpg")
    shutil.copy(lfw_photos("Hans_Blix")[1], root / "a" / "b" / "two.jpg")
    os.symlink(root, root / "a" / "b" / "up")  # a loop back to the top
    os.symlink(root / "a", root / "again")  # a second way into a/
    found = scan([root])
    assert sorted(p.name for p in found.photos) == ["one.jpg", "two.jpg"] and not found.unreadable
    result = run(tmp_path / "home", "index", root)
    assert result.exit_code == 0 and "indexed 2 new photos" in result.stdout, result.output


def test_fifos_and_devices_are_skipped_not_opened(tmp_path, data_dir, fake_models, deadline):
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy(lfw_photos("Hans_Blix")[0], root / "one.jpg")
    os.mkfifo(root / "pipe.jpg")  # a photo's name, but opening it would wait for a writer for ever
    result = run(tmp_path / "home", "index", root, "/dev/zero")  # a device given by name: endless bytes
    assert result.exit_code == 0, result.output
    assert "indexed 1 new photos" in result.stdout
    assert "pipe.jpg: a FIFO, not a photo file: skipped" in result.stdout
    assert "/dev/zero: a device, not a photo file: skipped" in result.stdout


def test_a_folder_that_cannot_be_listed_is_reported_and_the_rest_indexed(tmp_path, data_dir, fake_models,
                                                                        monkeypatch):
    """Permissions do not stop the superuser these tests may run as, so the refusal is the operating system's
    answer made by hand: listing `locked/` raises PermissionError, as it does for another user's 0700 folder."""
    root = tmp_path / "photos"
    (root / "locked").mkdir(parents=True)
    shutil.copy(lfw_photos("Hans_Blix")[0], root / "one.jpg")
    shutil.copy(lfw_photos("Hans_Blix")[1], root / "locked" / "two.jpg")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = run(tmp_path / "home", "index", root)
    assert result.exit_code == 0, result.output
    assert "indexed 1 new photos" in result.stdout
    assert f"{root / 'locked'}: folder not read (Permission denied)" in result.stdout


def test_a_photo_replaced_while_it_is_indexed_is_stored_as_it_was_read(tmp_path, data_dir, fake_models,
                                                                       monkeypatch, detector):
    """The photo's file is read once, then replaced by another before its faces are stored: what is stored is
    the photo that was read (its sha256 and its faces, decoded from the bytes that were hashed), never the
    other photo's faces under its sha256. `check` then reports the file as changed, and a rerun indexes what
    the file holds now."""
    import hashlib
    import json
    import sqlite3

    import indexer.pipeline

    root = tmp_path / "photos"
    root.mkdir()
    for n, p in enumerate(lfw_photos("Hans_Blix")[:3]):
        shutil.copy(p, root / f"{n}.jpg")
    victim, other = root / "1.jpg", lfw_photos("Laura_Bush")[0]
    was = victim.read_bytes()
    real = indexer.pipeline.read_photo

    def read_then_replace(path):
        photo = real(path)
        if Path(path) == victim and not read_then_replace.done:
            read_then_replace.done = True
            shutil.copy(other, victim)  # replaced after it was read
        return photo

    read_then_replace.done = False
    monkeypatch.setattr(indexer.pipeline, "read_photo", read_then_replace)
    home = tmp_path / "home"
    first = run(home, "index", root)
    assert first.exit_code == 0, first.output
    assert "indexed 3 new photos" in first.stdout
    with sqlite3.connect(home / "facesearch.db") as db:
        (sha,) = db.execute("SELECT sha256 FROM photos WHERE path = ?", (str(victim),)).fetchone()
        boxes = db.execute("SELECT x0, y0, x1, y1 FROM faces JOIN photos ON photos.id = faces.photo_id "
                           "WHERE photos.path = ?", (str(victim),)).fetchall()
    assert sha == hashlib.sha256(was).hexdigest()  # the photo that was read, with its face, not the other's
    (read_box,), (other_box,) = ([f.box.as_list() for f in faces]
                                 for faces in detector.detect([read_image(lfw_photos("Hans_Blix")[1]),
                                                               read_image(other)]))
    assert read_box != other_box and [list(b) for b in boxes] == [read_box]
    checked = run(home, "check")
    assert checked.exit_code == 1 and "1.jpg" in checked.stdout, checked.output
    again = run(home, "index", root)
    assert "indexed 1 new photos" in again.stdout, again.output  # the file as it is now
    assert json.loads(run(home, "status", "--json").stdout)["photos"] == 4
