"""Kill safety: `facesearch index` killed with SIGKILL at many points (start-up, scanning, detection, database
writes, the index save), rerun each time on the same home, ends with the same gallery as one uninterrupted run:
every photo once, the same faces with the same boxes and vectors, and database and index in agreement.

The runs report their steps to a file (tests/traced_index.py runs the command with `indexer.pipeline.
index_paths` told to write each step there), so each kill is
aimed at the Nth step starting with a given text instead of at a guessed moment: after `scanned` or `written`
it lands in the detection of the next batch, after `detected` in the database write of that batch, after
`saving` in or just after the index save. The index file write itself takes microseconds, so kills aimed
inside it (`temp-partial faces.faiss`: the temporary file half written; `temp-complete faces.faiss`: written
and synced, not renamed; `replaced faces.faiss`: renamed, its sidecar not yet written) also pass `--hold`,
which pauses the run right after that step until the kill lands. A few kills come at
fixed start-up delays and seeded random ones. Every kill before the end also leaves the database ahead of the
saved index, which the rerun must notice, and a kill inside the save leaves a temporary file, which the rerun
must neither read nor leave behind.

A faster test kills a process saving a gallery's index at each step of both file writes (index and sidecar),
on synthetic vectors, and checks the next opening of the gallery."""
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
import pytest
from click.testing import CliRunner
from conftest import REPO, lfw_photos
from sqlalchemy import func, select

from db import INDEXED, FaceRow, PhotoRow, connect, session_factory, sqlite_url
from facesearch.cli import cli
from indexer import Gallery, VectorIndex
from indexer.vectors import sidecar_path
from models.files import remove_leftovers
from models.extractor import ModelInfo

BATCH = 2  # photos per batch (one transaction each): 30 batches for 60 photos
PHOTOS_EACH = 12
PEOPLE = ("Hugo_Chavez", "Ariel_Sharon", "Colin_Powell", "Jean_Chretien", "Gerhard_Schroeder")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
           TF_NUM_INTEROP_THREADS="1")
for _name in ("FACESEARCH_HOME", "FACESEARCH_DB", "FACESEARCH_MODEL"):
    ENV.pop(_name, None)

# Where each run is killed, in order, all on one home: (the start of a step's text, the how-many-th such step
# in the run) or ("delay", seconds after start). Each rerun finds the work the earlier ones committed, so later
# kills land on batches further along; the index save comes at the end of every run, so its kills come last.
AIMED = [
    ("delay", 0.3), ("share", 0.3), ("share", 0.5), ("scanned", 1), ("detected", 1), ("written", 1), ("scanned", 1), ("detected", 2),
    ("written", 1), ("detected", 1), ("random", None), ("written", 2), ("detected", 1), ("scanned", 1),
    ("random", None), ("detected", 2), ("written", 1), ("detected", 1), ("random", None), ("written", 1),
    ("detected", 1), ("random", None), ("lose-index", None), ("temp-partial faces.faiss", 1),
    ("temp-complete faces.faiss", 1), ("replaced faces.faiss", 1), ("temp-complete faces.faiss", 1),
    ("saving", 1), ("saving", 1), ("saved", 1), ("scanned", 1),
]
# ("share", f) is a delay of that fraction of the uninterrupted run's wall time, ("random", None) a seeded random
# one between 15 % and 60 % of it: the run starts in about a second, so fixed delays would land after its end.
# ("lose-index", None) is no run: it deletes the saved index and its sidecar (a cache, rebuilt from the database),
# so that the runs after it have an index to save even when the run before them finished cleanly.
# Steps that take microseconds: a run aimed there is held there (`--hold`) until it is killed
HELD = ("temp-partial", "temp-complete", "replaced")


def _run(home: Path, folder: Path, trace: Path, log: Path, kill_at: tuple[str, float] | None):
    """Run `facesearch index` and kill it with SIGKILL at `kill_at`; returns (killed, the steps it traced)."""
    trace.write_text("")
    hold = ["--hold", kill_at[0]] if kill_at is not None and kill_at[0].startswith(HELD) else []
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "traced_index.py"), str(trace), *hold, "--home", str(home), "index",
         "--batch-size", str(BATCH), str(folder)],
        cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    start = time.monotonic()
    killed = False
    while proc.poll() is None:
        assert time.monotonic() - start < 180, log.read_text()[-2000:]
        if kill_at is not None:
            kind, n = kill_at
            if kind == "delay":
                hit = time.monotonic() - start >= n
            else:
                steps = [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]
                hit = sum(step.startswith(kind) for step in steps) >= n
            if hit:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed = True
                break
        time.sleep(0.005)
    if not killed:
        assert proc.returncode == 0, log.read_text()[-2000:]
    return killed, [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]


def _temp_files(home: Path) -> list[str]:
    """The temporary files of index and sidecar writes in `home`."""
    if not home.exists():
        return []
    return sorted(name for name in os.listdir(home) if name.startswith(".faces.faiss") and name.endswith(".tmp"))


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


# The normal run's short version: one kill at each kind of point
AIMED_SHORT = [
    ("share", 0.3), ("scanned", 1), ("detected", 1), ("written", 1), ("random", None), ("lose-index", None),
    ("temp-partial faces.faiss", 1), ("temp-complete faces.faiss", 1), ("replaced faces.faiss", 1), ("saving", 1),
]


@pytest.mark.slow  # 25 s: AIMED's 30 kills; the normal run makes AIMED_SHORT's 9
def test_index_killed_at_many_points_and_rerun_ends_as_one_uninterrupted_run(tmp_path, data_dir, shipped_model):
    killed_and_rerun(tmp_path, AIMED, min_points=20, min_temp=2, min_leftovers=2)


def test_index_killed_at_a_few_points_and_rerun_ends_as_one_uninterrupted_run(tmp_path, data_dir, shipped_model):
    killed_and_rerun(tmp_path, AIMED_SHORT, min_points=7, min_temp=1, min_leftovers=1)


def killed_and_rerun(tmp_path: Path, aimed: list, min_points: int, min_temp: int, min_leftovers: int) -> None:
    """Index a folder while killing the run at each point of `aimed`, rerun it to the end, and compare the
    gallery with that of one uninterrupted run."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PEOPLE:
        for p in lfw_photos(name)[:PHOTOS_EACH]:
            shutil.copy(p, folder / p.name)
    trace, log = tmp_path / "trace.txt", tmp_path / "run.err"

    reference = tmp_path / "reference"
    started = time.monotonic()
    killed, steps = _run(reference, folder, trace, log, None)
    reference_seconds = time.monotonic() - started
    assert not killed and sum(s.startswith("written") for s in steps) == len(PEOPLE) * PHOTOS_EACH // BATCH

    home = tmp_path / "home"
    rng = random.Random(20261128)
    aims: Counter[str] = Counter()
    points: list[tuple[str, float, str]] = []
    leftovers_met = 0  # runs that started beside a temporary file of a killed save
    for kind, n in aimed:
        if kind == "random":
            kind, n = "delay", round(rng.uniform(0.15, 0.6) * reference_seconds, 2)
        elif kind == "share":
            kind, n = "delay", round(n * reference_seconds, 2)
        if kind == "lose-index":
            for name in ("faces.faiss", "faces.faiss.json"):
                (home / name).unlink(missing_ok=True)
            continue
        leftovers_met += bool(_temp_files(home))
        killed, steps = _run(home, folder, trace, log, (kind, n))
        if killed:
            aims[kind] += 1
            points.append((kind, n, steps[-1] if steps else "-"))
            if kind.startswith(HELD):
                # held there: the kill landed inside the index file write, which left its temporary file
                assert steps[-1] == kind, (kind, steps)
                assert kind.startswith("replaced") or _temp_files(home), (kind, sorted(os.listdir(home)))
    killed, _ = _run(home, folder, trace, log, None)
    assert not killed
    assert not _temp_files(home), sorted(os.listdir(home))  # a leftover is removed, never renamed into place

    # (aim, n, the last step the killed run finished): under load a kill may land a step later than aimed
    assert len(points) >= min_points, str(points)
    for kind in ("delay", "scanned", "detected", "written"):
        assert aims[kind] >= 1, str(points)
    assert aims["saving"] + aims["saved"] >= 1, str(points)
    assert aims["temp-partial faces.faiss"] + aims["temp-complete faces.faiss"] >= min_temp, str(points)
    assert leftovers_met >= min_leftovers, str(points)

    ref_photos, ref_faces, _ = _gallery(reference)
    photos, faces, face_ids = _gallery(home)
    assert len(photos) == len(ref_photos) == len(PEOPLE) * PHOTOS_EACH
    assert all(p.status == INDEXED for p in photos)
    assert len({p.sha256 for p in photos}) == len(photos)  # every photo once
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


# -- killed inside the save of the index, on synthetic vectors ----------------------------------------------------

MODEL = ModelInfo(version="synthetic-1", dim=8, threshold=0.4, threshold_far=0.001)

# Run in a child process: open the gallery of HOME, add one batch of photos (SEED), and save the index, killing
# itself with SIGKILL right after the step AIM of that save (when AIM is empty, it saves to the end).
SAVE_AND_DIE = """
import os, signal, sys
from pathlib import Path
import numpy as np
from db import sqlite_url
from indexer import BatchWrite, EmbeddedFace, Gallery, Photo
from models.extractor import ModelInfo
from models.faces import Box, Face

home, seed, aim = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = ModelInfo(version="synthetic-1", dim=8, threshold=0.4, threshold_far=0.001)
rng = np.random.default_rng(seed)
photos = []
for n in range(5):
    faces = []
    for i in range(2):
        v = rng.standard_normal(8).astype(np.float32)
        box = Box(10 + 30 * i, 10, 30 + 30 * i, 35)
        faces.append(EmbeddedFace(Face(box, np.zeros((5, 2), np.float32), 0.99), v / np.linalg.norm(v)))
    photos.append(Photo(f"/photos/{seed}-{n}.jpg", f"{seed:032x}{n:032x}", 1000, width=160, height=160,
                        faces=tuple(faces)))

def step(text):
    if aim and text == aim:
        os.kill(os.getpid(), signal.SIGKILL)

g = Gallery.open(sqlite_url(home / "facesearch.db"), home / "faces.faiss", model)
g.write(BatchWrite(photos=photos))
g.save_index(step)
g.close()
"""

SAVE_STEPS = [f"{kind} {name}" for name in ("faces.faiss", "faces.faiss.json")
              for kind in ("temp-partial", "temp-complete", "replaced")]


def _save_and_die(home: Path, seed: int, aim: str) -> int:
    done = subprocess.run([sys.executable, "-c", SAVE_AND_DIE, str(home), str(seed), aim], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr[-2000:]
    return done.returncode


def _face_ids(home: Path) -> set[int]:
    engine = connect(sqlite_url(home / "facesearch.db"), create=False)
    with session_factory(engine)() as s:
        ids = set(s.scalars(select(FaceRow.id)))
        assert s.scalar(select(func.count(func.distinct(PhotoRow.sha256)))) == s.scalar(select(func.count(PhotoRow.id)))
    engine.dispose()
    return ids


@pytest.mark.parametrize("aim", SAVE_STEPS)
def test_a_save_killed_at_each_step_of_the_index_write_leaves_a_gallery_that_opens_right(tmp_path, aim):
    """A first run saves 10 faces; a second adds 10 and is killed at `aim` inside its save. Whatever the files
    then hold (old index, new index with the old sidecar, a half-written temporary file), the next opening has
    the database's 20 faces in its index, its save removes the temporary file, and a third run adds 10 more."""
    assert _save_and_die(tmp_path, 1, "") == 0
    assert _save_and_die(tmp_path, 2, aim) == -signal.SIGKILL
    temps = _temp_files(tmp_path)
    assert bool(temps) == aim.startswith(("temp-partial", "temp-complete")), (aim, temps)
    # in place: the old pair, the new index with the old sidecar (refused), or after the last step the new pair
    finished = aim == "replaced faces.faiss.json"
    loaded = VectorIndex.load(tmp_path / "faces.faiss")
    assert loaded is None or loaded[1].count == loaded[0].count == (20 if finished else 10)

    ids = _face_ids(tmp_path)
    assert len(ids) == 20
    with Gallery.open(sqlite_url(tmp_path / "facesearch.db"), tmp_path / "faces.faiss", MODEL) as g:
        # the old pair catches up with the 10 faces written since; a refused pair is rebuilt
        assert g.index.ids == ids and (g.rebuilt or g.caught_up == 10) != finished
    assert not _temp_files(tmp_path)
    index, sidecar = VectorIndex.load(tmp_path / "faces.faiss")
    assert index.ids == ids and (sidecar.count, sidecar.max_id) == (20, max(ids))

    assert _save_and_die(tmp_path, 3, "") == 0
    ids = _face_ids(tmp_path)
    index, sidecar = VectorIndex.load(tmp_path / "faces.faiss")
    assert len(ids) == 30 and index.ids == ids and sidecar.count == 30


def test_leftovers_of_a_running_save_are_left_alone(tmp_path):
    """Only the temporary files of processes that are gone are removed: another process may be saving."""
    target = tmp_path / "faces.faiss"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead = tmp_path / f".faces.faiss.{int(gone.stdout)}.tmp"
    alive = tmp_path / f".faces.faiss.{os.getppid()}.tmp"
    sidecar = tmp_path / f".faces.faiss.json.{int(gone.stdout)}.tmp"  # the sidecar's: removed with its own
    for p in (dead, alive, sidecar):
        p.write_bytes(b"half an index")
    assert remove_leftovers(target) == [dead]
    assert alive.exists() and sidecar.exists()
    assert remove_leftovers(sidecar_path(target)) == [sidecar]
    assert alive.exists()
