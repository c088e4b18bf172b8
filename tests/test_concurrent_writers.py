"""Two writers on one home: the write lock makes the second wait, and no save of the index drops the
vectors another process wrote."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import REPO, lfw_photos
from db import INDEXED, FaceRow, PhotoRow, connect, session_factory, sqlite_url
from facesearch.cli import cli
from indexer import BatchWrite, Gallery, VectorIndex
from indexer.lock import LOCK_FILE, hold_home
from test_gallery import MODEL, photo

WAITING = "another facesearch is writing to"


def test_a_second_holder_waits_and_is_told_who_holds_the_home(tmp_path):
    told: list[str] = []
    got_it = threading.Event()

    def second():
        with hold_home(tmp_path, on_wait=told.append):
            got_it.set()

    with hold_home(tmp_path):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert not got_it.is_set()  # still waiting while the first holds the home
        assert told == [f"{WAITING} {tmp_path} (pid {os.getpid()}); waiting for it to finish..."]
    t.join(timeout=10)
    assert got_it.is_set()
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_a_save_keeps_the_vectors_another_gallery_wrote_meanwhile(tmp_path):
    """Two galleries on one home (as two processes without the lock would be): each adds its own photos and
    saves last-writer-wins; the saved index still holds every face of the database."""
    url, index_path = sqlite_url(tmp_path / "facesearch.db"), tmp_path / "faces.faiss"
    a = Gallery.open(url, index_path, MODEL)
    b = Gallery.open(url, index_path, MODEL)
    a.write(BatchWrite(photos=[photo(1, 2), photo(2, 1)]))
    b.write(BatchWrite(photos=[photo(3, 1), photo(2, 1)]))  # photo 2 is in both runs
    b.close()
    a.close()  # a saves last: it must not drop b's vectors
    index, sidecar = VectorIndex.load(index_path)
    with Gallery.open(url, index_path, MODEL) as g:
        assert index.count == sidecar.count == g.counts().faces == 4
        assert not g.rebuilt  # the saved index agrees with the database as it stands


def test_two_index_runs_at_once_index_every_photo_exactly_once(tmp_path, data_dir, shipped_model):
    """`facesearch index A` and `facesearch index B` started together on one home, with photos in both
    folders: one waits for the other, and the home ends consistent with each photo stored once."""
    photos = lfw_photos("Hugo_Chavez")[:8] + lfw_photos("Ariel_Sharon")[:8] + lfw_photos("Colin_Powell")[:8]
    folder_a, folder_b, home = tmp_path / "a", tmp_path / "b", tmp_path / "home"
    for folder, chosen in ((folder_a, photos[:16]), (folder_b, photos[8:])):
        folder.mkdir()
        for p in chosen:
            shutil.copy(p, folder / p.name)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1")
    logs = [tmp_path / "a.err", tmp_path / "b.err"]
    # the test holds the home first, so that both runs meet the lock for certain, then lets them race for it
    with hold_home(home):
        runs = [subprocess.Popen([sys.executable, "-m", "facesearch", "--home", str(home), "index", str(folder)],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
                for folder, log in zip((folder_a, folder_b), logs)]
        deadline = time.monotonic() + 240
        while not all(WAITING in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            assert all(r.poll() is None for r in runs), [log.read_text()[-2000:] for log in logs]
            time.sleep(0.5)
    outputs = [r.communicate(timeout=300)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    new = [int(out.split("indexed ")[1].split(" new")[0]) for out in outputs]
    assert sum(new) == 24  # the 8 photos in both folders were read by one run only

    engine = connect(sqlite_url(home / "facesearch.db"), create=False)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count(PhotoRow.id)).where(PhotoRow.status == INDEXED)) == 24
        assert s.scalar(select(func.count(func.distinct(PhotoRow.sha256)))) == s.scalar(
            select(func.count(PhotoRow.id)))
        faces = s.execute(select(FaceRow.photo_id, FaceRow.x0, FaceRow.y0, FaceRow.x1, FaceRow.y1)).all()
        face_ids = set(s.scalars(select(FaceRow.id)))
    engine.dispose()
    assert len(faces) >= 20 and len(set(faces)) == len(faces)  # no face stored twice
    index, sidecar = VectorIndex.load(home / "faces.faiss")
    assert index.count == sidecar.count == len(faces) and index.ids == face_ids
    checked = CliRunner().invoke(cli, ["--home", str(home), "check"])
    assert checked.exit_code == 0, checked.output

