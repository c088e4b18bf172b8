"""Forgetting a person leaves nothing of them in the home, and nothing the home stores is a pickle."""
from __future__ import annotations

import io
import pickletools
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from conftest import REPO, lfw_photos
from db import INDEXED, FaceRow, PersonRow, PhotoRow, connect, session_factory
from facesearch import api, toolkit
from facesearch.calibration import CALIBRATION_FILE
from facesearch.config import load_config
from indexer import Gallery, VectorIndex, hash_file
from indexer.lock import LOCK_FILE

NAME = "Zelda Quartermain"  # appears in no photo's path, so any trace of it in the home comes from forget


@pytest.fixture
def home(tmp_path, data_dir, detector, fake_extractor):
    """A home with two people enrolled (NAME from photos of Hugo Chavez, one of them also a gallery photo),
    a gallery of five photos and a calibration on two people's photos."""
    config = load_config(home=tmp_path / "home", env={})
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for p in lfw_photos("Hugo_Chavez")[3:6] + lfw_photos("Ariel_Sharon")[2:4]:
        shutil.copy(p, gallery / p.name)
    models = {"detector": detector, "extractor": fake_extractor}
    api.index([gallery], config, **models)
    # force: the double's vectors do not tell people apart, so every face would be in doubt to enroll's check
    api.enroll(NAME, lfw_photos("Hugo_Chavez")[:3] + [gallery / lfw_photos("Hugo_Chavez")[3].name], config,
               force=True, **models)
    api.enroll("Ariel Sharon", lfw_photos("Ariel_Sharon")[:2], config, force=True, **models)
    calibration = tmp_path / "calibration"
    for person in ("Colin_Powell", "Ariel_Sharon"):
        (calibration / person).mkdir(parents=True)
        for p in lfw_photos(person)[5:7]:
            shutil.copy(p, calibration / person / p.name)
    toolkit.calibrate(calibration, config.home, fake_extractor, detector)
    return config


def _rows(config):
    engine = connect(config.db_url, create=False)
    with session_factory(engine)() as s:
        faces = s.execute(select(FaceRow.id, FaceRow.vector, PersonRow.name, PhotoRow.sha256, PhotoRow.status)
                          .join(PhotoRow, FaceRow.photo_id == PhotoRow.id)
                          .outerjoin(PersonRow, FaceRow.person_id == PersonRow.id)).all()
        people = list(s.scalars(select(PersonRow.name)))
        photos = {sha: status for sha, status in s.execute(select(PhotoRow.sha256, PhotoRow.status))}
    engine.dispose()
    return faces, people, photos


def test_forget_leaves_no_trace_of_the_person(home, fake_extractor):
    faces, _, _ = _rows(home)
    theirs = [f for f in faces if f.name == NAME]
    only_enrolled = {hash_file(p)[0] for p in lfw_photos("Hugo_Chavez")[:3]}
    assert len(theirs) == 4 and only_enrolled <= {f.sha256 for f in theirs}

    # a reader left open (a `who` running meanwhile) keeps SQLite from removing its write-ahead log at the end
    reader = sqlite3.connect(home.db_file)
    assert reader.execute("SELECT count(*) FROM people").fetchone() == (2,)
    gone = api.forget(NAME, home, extractor=fake_extractor)
    assert (gone.faces, gone.photos) == (4, 3)

    faces, people, photos = _rows(home)
    assert people == ["Ariel Sharon"]
    assert not {f.id for f in theirs} & {f.id for f in faces}
    assert not only_enrolled & set(photos)
    shared = hash_file(home.home.parent / "gallery" / lfw_photos("Hugo_Chavez")[3].name)[0]
    assert photos[shared] == INDEXED  # their gallery photo stays, its face now unknown
    # the saved index, and a gallery opened afresh, hold exactly the faces of the database
    index, _ = VectorIndex.load(home.index_path)
    assert index.ids == {f.id for f in faces}
    with Gallery.open(home.db_url, home.index_path, fake_extractor.info) as g:
        assert not g.rebuilt and g.index.ids == {f.id for f in faces}
    removed = np.stack([np.frombuffer(f.vector, "<f4") for f in theirs if f.sha256 in only_enrolled])
    distances, _ = index.search(removed, 1)
    assert (distances > 1e-4).all()  # their vectors are not in the index under another id either

    # nothing of them in any file of the home, with no VACUUM: deleted rows are zeroed, the log is emptied
    files = sorted(p for p in home.home.rglob("*") if p.is_file())
    assert {p.name for p in files} <= {"facesearch.db", "facesearch.db-wal", "facesearch.db-shm", "faces.faiss",
                                       "faces.faiss.json", LOCK_FILE, CALIBRATION_FILE}
    traces = [NAME.encode(), NAME.encode("utf-16-le")] + [str(p).encode() for p in lfw_photos("Hugo_Chavez")[:3]]
    for f in files:
        data = f.read_bytes()
        assert not [t for t in traces if t in data], f"{f} still holds a trace of {NAME}"
    assert b"Ariel Sharon" in (home.home / "facesearch.db").read_bytes()  # the search above can find a name
    reader.close()
    engine = connect(home.db_url, create=False)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    engine.dispose()


def test_nothing_stored_in_a_home_is_a_pickle(home):
    files = [p for p in home.home.rglob("*") if p.is_file()]
    assert {"facesearch.db", "faces.faiss", "faces.faiss.json", CALIBRATION_FILE} <= {p.name for p in files}
    for f in files:
        data = f.read_bytes()
        assert not re.match(rb"\x80[\x02-\x05]", data), f"{f} starts like a pickle"
        assert not _reads_as_pickle(data), f"{f} reads as a pickle"


def _reads_as_pickle(data: bytes) -> bool:
    try:
        pickletools.dis(data, out=io.StringIO())
    except Exception:  # any complaint of the disassembler means the bytes are no pickle
        return False
    return True


def test_no_code_reads_or_writes_pickles():
    """One exception: MTCNN's weights ship inside the mtcnn package as joblib pickles, and `models/graphs.py`
    reads them with a reader that builds arrays and nothing else (the next test)."""
    folders = ("db", "indexer", "models", "facesearch", "scripts")
    sources = [p for folder in folders for p in (REPO / folder).rglob("*.py")]
    assert len(sources) > 20
    uses = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill|cloudpickle|joblib|shelve)\b|allow_pickle\s*=\s*True",
                      re.MULTILINE)
    found = [f"{p.relative_to(REPO)}: {m.group(0).strip()}" for p in sources for m in uses.finditer(p.read_text())]
    assert found == ["models/graphs.py: import pickle", "models/graphs.py: from joblib"]
    assert "pickle.dump" not in (REPO / "models" / "graphs.py").read_text()


def test_the_weight_reader_builds_arrays_and_refuses_anything_else(tmp_path):
    """A joblib file that would call a function when unpickled is refused before anything runs; MTCNN's own
    weight files read as lists of arrays."""
    import pickle

    import joblib
    import lz4  # noqa: F401 - joblib's LZ4 compression needs it

    from models.graphs import mtcnn_weights, read_arrays

    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, np.float32)]
    joblib.dump(arrays, tmp_path / "ok.lz4", compress="lz4")
    got = read_arrays(tmp_path / "ok.lz4")
    assert [a.tolist() for a in got] == [a.tolist() for a in arrays]

    marker = tmp_path / "ran"
    joblib.dump([Touch(str(marker))], tmp_path / "evil.lz4", compress="lz4")
    with pytest.raises(pickle.UnpicklingError, match="only arrays"):
        read_arrays(tmp_path / "evil.lz4")
    assert not marker.exists()
    assert [a.shape for a in mtcnn_weights("pnet")][:2] == [(3, 3, 3, 10), (10,)]


class Touch:
    """Unpickled, it would create a file: what a hostile pickle does with `os.system` instead."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))
