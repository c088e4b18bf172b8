"""Kill safety: `facesearch index` killed with SIGKILL at many points (start-up, scanning, detection, database
writes, the index save), rerun each time on the same home, ends with the same gallery as one uninterrupted run:
every photo once, the same faces with the same boxes and vectors, and database and index in agreement.

The runs report their steps through FACESEARCH_TRACE (see `indexer.pipeline.index_paths`), so each kill is
aimed at the Nth step of a kind instead of at a guessed moment: after `scanned` or `written` it lands in the
detection of the next batch, after `detected` in the database write of that batch, after `saving` in or just
after the index save (milliseconds long). A few kills come at fixed start-up delays and seeded random ones.
Every kill before the end also leaves the database ahead of the saved index, which the rerun must notice."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from conftest import REPO, lfw_photos
from sqlalchemy import select

from db import INDEXED, FaceRow, PhotoRow, connect, session_factory, sqlite_url
from facesearch.cli import cli
from indexer import VectorIndex

BATCH = 2  # photos per batch (one transaction each): 20 batches for 40 photos
PEOPLE = ("Hugo_Chavez", "Ariel_Sharon", "Colin_Powell", "Jean_Chretien", "Gerhard_Schroeder")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
           TF_NUM_INTEROP_THREADS="1")
for _name in ("FACESEARCH_HOME", "FACESEARCH_DB", "FACESEARCH_MODEL", "FACESEARCH_TRACE"):
    ENV.pop(_name, None)

# Where each run is killed, in order, all on one home: (the step kind, the how-many-th of that kind in the run)
# or ("delay", seconds after start). Each rerun finds the work the earlier ones committed, so later kills land
# on batches further along; the index save comes at the end of every run, so its kills come last.
AIMED = [
    ("delay", 0.5), ("delay", 2.0), ("delay", 4.0), ("scanned", 1), ("detected", 1), ("written", 1), ("scanned", 1), ("detected", 2),
    ("written", 1), ("detected", 1), ("random", None), ("written", 2), ("detected", 1), ("scanned", 1),
    ("random", None), ("detected", 2), ("written", 1), ("detected", 1), ("random", None), ("written", 1),
    ("detected", 1), ("random", None), ("saving", 1), ("saving", 1), ("saved", 1), ("scanned", 1),
]


def _run(home: Path, folder: Path, trace: Path, log: Path, kill_at: tuple[str, float] | None):
    """Run `facesearch index` and kill it with SIGKILL at `kill_at`; returns (killed, the steps it traced)."""
    trace.write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facesearch", "--home", str(home), "index", "--batch-size", str(BATCH), str(folder)],
        cwd=REPO, env=dict(ENV, FACESEARCH_TRACE=str(trace)), stdout=subprocess.DEVNULL, stderr=log.open("w"))
    start = time.monotonic()
    killed = False
    while proc.poll() is None:
        assert time.monotonic() - start < 180, log.read_text()[-2000:]
        if kill_at is not None:
            kind, n = kill_at
            if kind == "delay":
                hit = time.monotonic() - start >= n
            else:
                hit = sum(line.split()[1] == kind for line in trace.read_text().splitlines()) >= n
            if hit:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed = True
                break
        time.sleep(0.005)
    if not killed:
        assert proc.returncode == 0, log.read_text()[-2000:]
    return killed, [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]


def _gallery(home: Path):
    """The photos (path -> sha256) and faces (sha256 -> [(box, vector)] sorted by box) of a home, its face ids."""
    engine = connect(sqlite_url(home / "facesearch.db"), create=False)
    with session_factory(engine)() as s:
        photos = s.execute(select(PhotoRow.id, PhotoRow.path, PhotoRow.sha256, PhotoRow.status)).all()
        faces = s.execute(select(FaceRow.id, FaceRow.photo_id, FaceRow.x0, FaceRow.y0, FaceRow.x1, FaceRow.y1,
                                 FaceRow.vector)).all()
    engine.dispose()
    sha_of = {p.id: p.sha256 for p in photos}
    by_photo: dict[str, list] = {p.sha256: [] for p in photos}
    for f in faces:
        by_photo[sha_of[f.photo_id]].append((np.array([f.x0, f.y0, f.x1, f.y1]), np.frombuffer(f.vector, "<f4")))
    for found in by_photo.values():
        found.sort(key=lambda face: tuple(face[0]))
    return photos, by_photo, {f.id for f in faces}


def test_index_killed_at_many_points_and_rerun_ends_as_one_uninterrupted_run(tmp_path, data_dir, shipped_model):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PEOPLE:
        for p in lfw_photos(name)[:8]:
            shutil.copy(p, folder / p.name)
    trace, log = tmp_path / "trace.txt", tmp_path / "run.err"

    reference = tmp_path / "reference"
    started = time.monotonic()
    killed, steps = _run(reference, folder, trace, log, None)
    reference_seconds = time.monotonic() - started
    assert not killed and sum(s.startswith("written") for s in steps) == 20

    home = tmp_path / "home"
    rng = random.Random(20261128)
    aims: Counter[str] = Counter()
    points: list[tuple[str, float, str]] = []
    for kind, n in AIMED:
        if kind == "random":
            kind, n = "delay", round(rng.uniform(1.0, reference_seconds), 2)
        killed, steps = _run(home, folder, trace, log, (kind, n))
        if killed:
            aims[kind] += 1
            points.append((kind, n, steps[-1] if steps else "-"))
    killed, _ = _run(home, folder, trace, log, None)
    assert not killed

    # (aim, n, the last step the killed run finished): under load a kill may land a step later than aimed
    assert len(points) >= 20, points
    for kind in ("delay", "scanned", "detected", "written"):
        assert aims[kind] >= 1, points
    assert aims["saving"] + aims["saved"] >= 1, points

    ref_photos, ref_faces, _ = _gallery(reference)
    photos, faces, face_ids = _gallery(home)
    assert len(photos) == len(ref_photos) == 40
    assert all(p.status == INDEXED for p in photos)
    assert len({p.sha256 for p in photos}) == 40  # every photo once
    assert sorted((p.path, p.sha256) for p in photos) == sorted((p.path, p.sha256) for p in ref_photos)
    for sha, ref in ref_faces.items():
        got = faces[sha]
        assert len(got) == len(ref), sha
        for (box, vector), (ref_box, ref_vector) in zip(got, ref):
            np.testing.assert_allclose(box, ref_box, atol=0.05)
            np.testing.assert_allclose(vector, ref_vector, atol=1e-4)

    index, sidecar = VectorIndex.load(home / "faces.faiss")
    assert index.ids == face_ids and sidecar.count == len(face_ids)
    checked = CliRunner().invoke(cli, ["--home", str(home), "check"])
    assert checked.exit_code == 0, checked.output
