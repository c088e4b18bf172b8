"""Bad and odd inputs, generated in tmp_path (see bad_inputs.py): each is decoded or refused with its reason,
`facesearch index` goes on over all of them and names every failure (in its summary and in `status`), and
EXIF-rotated photos give boxes where a person sees the face."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from bad_inputs import BROKEN, ONE_PIXEL, READABLE, UPRIGHT_SIZE, face_centre, upright, write_corpus, write_oriented
from conftest import REPO, lfw_photos
from facesearch import api
from facesearch.cli import cli
from facesearch.config import load_config
from indexer import scan
from models.image import ImageError, read_image


@pytest.fixture
def face_photo(data_dir):
    return lfw_photos("Hans_Blix")[0]


@pytest.fixture
def corpus(tmp_path, face_photo):
    return write_corpus(face_photo, tmp_path / "corpus")


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *map(str, args)])


def test_every_odd_format_and_mode_decodes_to_8_bit_rgb(corpus, face_photo):
    h, w, _ = read_image(face_photo).shape
    for name in READABLE:
        image = read_image(corpus / name)
        assert image.shape == (h, w, 3) and image.dtype == np.uint8, name
        assert 20 < image.mean() < 235, name  # the photo, not a blank frame
    assert read_image(corpus / ONE_PIXEL).shape == (1, 1, 3)


def test_every_broken_file_is_refused_with_its_name_and_reason(corpus):
    for name, reason in BROKEN.items():
        with pytest.raises(ImageError) as caught:
            read_image(corpus / name)
        assert str(caught.value).startswith(f"{corpus / name}: ") and reason in str(caught.value), name


def test_a_decompression_bomb_is_refused_without_decoding_it(corpus):
    """400 million pixels would take 400 MB decoded: the refusal must come from the header alone."""
    # VmHWM, not getrusage's ru_maxrss: on Linux the latter survives exec and can report the memory of the
    # (large, TensorFlow-loaded) test process that forked this one
    code = ("import sys\n"
            "from models.image import ImageError, read_image\n"
            "try:\n"
            "    read_image(sys.argv[1])\n"
            "except ImageError as e:\n"
            "    print(e)\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "print(int(hwm.split()[1]) // 1024)\n")
    bomb = corpus / "bomb.png"
    assert bomb.stat().st_size < 2_000_000
    done = subprocess.run([sys.executable, "-c", code, str(bomb)], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    message, peak_mb = done.stdout.strip().splitlines()
    assert str(bomb) in message and "decompression bomb" in message
    assert int(peak_mb) < 200  # peak resident memory of the whole process, MB


def test_every_exif_orientation_is_decoded_upright(tmp_path, face_photo):
    expected = np.asarray(upright(face_photo), np.float32)
    for tag, path in write_oriented(face_photo, tmp_path).items():
        image = read_image(path)
        assert image.shape == (UPRIGHT_SIZE[1], UPRIGHT_SIZE[0], 3), tag
        assert np.abs(image.astype(np.float32) - expected).mean() < 6, tag  # JPEG noise only


def test_a_scan_ends_on_a_symlink_loop_and_walks_a_folder_named_like_a_photo(corpus):
    found = scan([corpus])
    names = {p.relative_to(corpus).as_posix() for p in found.photos}
    assert names == set(BROKEN) | set(READABLE) | {ONE_PIXEL}
    assert not any("loop" in p.parts for p in found.photos)


def test_index_goes_on_over_the_corpus_and_names_every_failure(tmp_path, corpus, fake_models):
    home = tmp_path / "home"
    result = run(home, "index", corpus)
    assert result.exit_code == 0, result.output  # failures are reported, not an error: see `facesearch --help`
    assert f"indexed {len(READABLE) + 1} new photos" in result.stdout
    assert f"failed: {len(BROKEN)} photos" in result.stdout
    for name, reason in BROKEN.items():
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"  {corpus / name}: "))
        assert reason in line, line

    status = run(home, "status")
    assert status.exit_code == 0, status.output
    assert f"{len(READABLE) + 1} indexed, {len(BROKEN)} failed" in status.stdout
    for name, reason in BROKEN.items():
        line = next(line for line in status.stdout.splitlines() if line.startswith(f"  {corpus / name}: "))
        assert reason in line, line
    failures = {f["photo"]: f["reason"] for f in json.loads(run(home, "status", "--json").stdout)["failures"]}
    assert set(failures) == {str(corpus / name) for name in BROKEN}

    again = run(home, "index", corpus)  # a rerun reads nothing new and reports the same failures
    assert again.exit_code == 0 and "indexed 0 new photos" in again.stdout
    assert f"failed: {len(BROKEN)} photos" in again.stdout


def test_an_unreadable_file_is_named_with_its_reason(tmp_path, face_photo, fake_models, monkeypatch):
    """chmod 000 stops reading for an ordinary user; running as root, where it does not, the refusal the
    operating system would give is simulated at the one place the indexer opens the file's bytes."""
    folder = tmp_path / "photos"
    folder.mkdir()
    locked = folder / "locked.jpg"
    locked.write_bytes(face_photo.read_bytes())
    home = tmp_path / "home"
    if os.geteuid() == 0:
        import pathlib

        real_read = pathlib.Path.read_bytes

        def refuse(path):
            if path == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_read(path)

        monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
        result = run(home, "index", folder)
        monkeypatch.setattr(pathlib.Path, "read_bytes", real_read)
    else:
        locked.chmod(0)
        try:
            result = run(home, "index", folder)
        finally:
            locked.chmod(0o644)
    assert result.exit_code == 0, result.output
    assert f"  {locked}: cannot read (Permission denied)" in result.stdout
    assert f"  {locked}: cannot read (Permission denied)" in run(home, "status").stdout

    readable_now = run(home, "index", folder)
    assert "indexed 1 new photos" in readable_now.stdout and "failed" not in readable_now.stdout
    status = run(home, "status").stdout
    assert "1 indexed, 0 failed" in status and str(locked) not in status


def test_boxes_of_exif_rotated_photos_are_where_a_person_sees_the_face(tmp_path, face_photo, shipped_model, detector):
    """Each of the 8 photos shows the same upright picture once its orientation is applied, so each must be
    stored with the upright size and its face box centred where the face is in the upright picture."""
    folder = tmp_path / "oriented"
    paths = write_oriented(face_photo, folder)
    config = load_config(home=tmp_path / "home", model=shipped_model, env={})
    report = api.index([folder], config, detector=detector)
    assert report.new == 8 and not report.failed, report
    cx, cy = face_centre(face_photo)
    with sqlite3.connect(config.db_file) as db:
        rows = db.execute("SELECT p.path, p.width, p.height, f.x0, f.y0, f.x1, f.y1, f.score FROM faces f "
                          "JOIN photos p ON p.id = f.photo_id").fetchall()
    for tag, path in paths.items():
        faces = [r for r in rows if r[0] == str(path)]
        assert faces, f"orientation {tag}: no face found"
        _, width, height, x0, y0, x1, y1, _ = max(faces, key=lambda r: r[7])
        assert (width, height) == UPRIGHT_SIZE, tag
        side = x1 - x0
        assert abs((x0 + x1) / 2 - cx) < 0.25 * side and abs((y0 + y1) / 2 - cy) < 0.25 * side, \
            f"orientation {tag}: box {x0:.0f} {y0:.0f} {x1:.0f} {y1:.0f}, face centre at {cx:.0f} {cy:.0f}"
