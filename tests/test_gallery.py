"""Database and index kept in step, on seeded synthetic vectors (no photos, no networks)."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from db import ENROLLED, FAILED, INDEXED, FaceRow, PhotoRow
from fakes import enroll_photo, stored_photo
from indexer import BatchWrite, EmbeddedFace, Gallery, Photo, VectorIndex
from models.extractor import ModelInfo
from models.faces import Box, Face

DIM = 8
MODEL = ModelInfo(version="synthetic-1", dim=DIM, threshold=0.4, threshold_far=0.001)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def face(seed: int, x: float = 10.0) -> EmbeddedFace:
    landmarks = np.array([[x + 5, 20], [x + 15, 20], [x + 10, 25], [x + 6, 30], [x + 14, 30]], np.float32)
    return EmbeddedFace(Face(Box(x, 10, x + 20, 35), landmarks, 0.99), unit(seed))


def photo(n: int, faces: int = 1, error: str | None = None) -> Photo:
    return stored_photo(f"{n:064x}", f"/photos/{n}.jpg", 1000 + n, 160, 160,
                        tuple(face(100 * n + i, 10 + 30 * i) for i in range(faces)), error)


DATABASES: dict = {}  # tmp_path -> the database URL of that test (see `backend`)


@pytest.fixture(autouse=True)
def backend(tmp_path, database_url):
    """Every test here runs on SQLite and on PostgreSQL (conftest.database_url)."""
    DATABASES[tmp_path] = database_url
    yield
    del DATABASES[tmp_path]


def open_gallery(tmp_path, model: ModelInfo = MODEL) -> Gallery:
    return Gallery.open(DATABASES[tmp_path], tmp_path / "faces.faiss", model)


def test_a_batch_goes_to_the_database_and_the_index(tmp_path):
    with open_gallery(tmp_path) as g:
        added = g.write(BatchWrite(photos=[photo(1, 2), photo(2, 1), photo(3, 0), photo(4, error="damaged")]))
        assert added == 3
        assert g.index.count == 3
        c = g.counts()
        assert (c.photos, c.failed, c.faces, c.gallery_faces) == (3, 1, 3, 3)
        assert g.failures() == [("/photos/4.jpg", "damaged")]
        # the vector stored for a face is the one its id finds in the index
        with g.session() as s:
            row = s.scalars(select(FaceRow).order_by(FaceRow.id)).first()
        np.testing.assert_allclose(g.index.vector(row.id), np.frombuffer(row.vector, "<f4"))
    loaded = VectorIndex.load(tmp_path / "faces.faiss")
    assert loaded is not None and loaded[1].count == 3 and loaded[1].model_version == MODEL.version


def test_known_photos_by_content_hash(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1), photo(2, error="damaged")]))
        known = g.known_photos([f"{1:064x}", f"{2:064x}", f"{9:064x}"])
        assert {k: v.status for k, v in known.items()} == {f"{1:064x}": INDEXED, f"{2:064x}": FAILED}


def test_a_photo_already_indexed_is_not_written_twice(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1, 2)]))
        assert g.write(BatchWrite(photos=[photo(1, 2)])) == 0
        with g.session() as s:
            assert s.scalar(select(func.count(PhotoRow.id))) == 1
            assert s.scalar(select(func.count(FaceRow.id))) == 2


def test_an_index_behind_the_database_catches_up_with_the_faces_written_since(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1, 2)]))
    # a run killed after its database commit, before saving the index: the database has more than the file
    g = open_gallery(tmp_path)
    g.write(BatchWrite(photos=[photo(2, 3)]))
    g.engine.dispose()  # no close: the index on disk still holds 2 vectors
    assert VectorIndex.load(tmp_path / "faces.faiss")[1].count == 2
    with open_gallery(tmp_path) as g:
        assert g.index.count == 5
        assert g.caught_up == 3 and not g.rebuilt  # the 3 new faces added by id, nothing rebuilt
        _, found = g.index.search(unit(200), 1)
        with g.session() as s:
            assert s.get(FaceRow, int(found[0, 0])).photo.path == "/photos/2.jpg"
    with open_gallery(tmp_path) as g:
        assert g.index.count == 5 and not g.rebuilt


def test_homes_sharing_one_database_keep_their_indexes_current(tmp_path):
    """Two machines on one database (on PostgreSQL in the second run of this test), each with its own index
    file: what one writes, the other adds to its index by face id when it next opens the gallery, and both
    answer the same; after a removal the other rebuilds instead."""

    def other_home() -> Gallery:
        return Gallery.open(DATABASES[tmp_path], tmp_path / "other-home.faiss", MODEL)

    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1, 2), photo(2, 1)]))
    with other_home() as h:
        assert h.index.count == 3 and h.rebuilt  # its first index, built from the database
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(3, 2), photo(4, 1)]))
        g.enroll("Ada", [enroll_photo(f"{99:064x}", "/photos/ada.jpg", 10, 160, 160, face(7))])
        want = g.index.search(np.stack([unit(s) for s in (100, 300, 400, 7)]), 3)
    with other_home() as h:
        assert h.index.count == 7 and h.caught_up == 4 and not h.rebuilt  # (the index loads on first use)
        got = h.index.search(np.stack([unit(s) for s in (100, 300, 400, 7)]), 3)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    with open_gallery(tmp_path) as g:
        assert g.forget("Ada") is not None
    with other_home() as h:
        assert h.index.count == 6 and h.rebuilt and h.caught_up == 0  # a face it held is gone: rebuilt


def test_a_new_model_version_gets_an_index_of_its_own_vectors(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1, 2)]))
    newer = ModelInfo(version="synthetic-2", dim=DIM, threshold=0.4, threshold_far=0.001)
    with open_gallery(tmp_path, newer) as g:
        assert g.index.count == 0
        assert g.counts().stale_faces == 2
        known = g.known_photos([f"{1:064x}"])[f"{1:064x}"]
        assert known.stale_faces == 2
        stale = g.stale_faces(known.id)
        g.write(BatchWrite(vectors=[(face_id, unit(7)) for face_id, _ in stale]))
        assert g.index.count == 2 and g.counts().stale_faces == 0


def test_a_reused_version_with_another_dimension_is_refused(tmp_path):
    open_gallery(tmp_path).close()
    with pytest.raises(ValueError, match="give the new weights a new version"):
        open_gallery(tmp_path, ModelInfo(version=MODEL.version, dim=16, threshold=0.4, threshold_far=0.001))


def enroll_item(n: int) -> Photo:
    p = photo(n)
    return enroll_photo(p.sha256, p.path, p.size_bytes, 160, 160, p.faces[0])


def test_enroll_then_forget_removes_faces_from_database_and_index(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1), photo(2)]))
        result = g.enroll("Ada", [enroll_item(1), enroll_item(5), enroll_item(6)])  # photo 1 is also in the gallery
        assert len(result.added) == 3 and not result.skipped
        g.enroll("Bob", [enroll_item(7)])
        assert g.index.count == 6
        assert sorted(g.person_faces().values()) == ["Ada", "Ada", "Ada", "Bob"]
        assert [(p.name, p.enrolled_faces) for p in g.people()] == [("Ada", 3), ("Bob", 1)]
        ids, vectors = g.vectors_of("Ada")
        assert vectors.shape == (3, DIM)

        assert g.forget("Ada") == (3, 2)  # photos 5 and 6 were only used to enroll Ada
        assert g.forget("Ada") is None
        assert g.index.count == 3
        assert not set(ids.tolist()) & g.index.ids
        assert sorted(g.person_faces().values()) == ["Bob"]
        c = g.counts()
        assert (c.photos, c.enrolled_photos, c.faces, c.people) == (2, 1, 3, 1)
    with open_gallery(tmp_path) as g:
        assert g.index.count == 3 and not g.rebuilt


def test_a_face_is_enrolled_once(tmp_path):
    with open_gallery(tmp_path) as g:
        g.enroll("Ada", [enroll_item(1)])
        again = g.enroll("Ada", [enroll_item(1)])
        other = g.enroll("Bob", [enroll_item(1)])
        assert again.skipped == (("/photos/1.jpg", "already enrolled as Ada"),)
        assert other.skipped == (("/photos/1.jpg", "its face is already enrolled as Ada"),)
        assert g.index.count == 1


def test_an_enrolled_photo_indexed_later_joins_the_gallery(tmp_path):
    with open_gallery(tmp_path) as g:
        g.enroll("Ada", [enroll_item(1)])
        assert g.known_photos([f"{1:064x}"])[f"{1:064x}"].status == ENROLLED
        assert g.write(BatchWrite(photos=[photo(1, 2)])) == 2
        assert g.known_photos([f"{1:064x}"])[f"{1:064x}"].status == INDEXED
        c = g.counts()
        assert (c.photos, c.enrolled_photos, c.faces, c.gallery_faces) == (1, 0, 3, 2)


def test_faces_are_reported_with_their_photo_and_person(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1, 2)]))
        g.enroll("Ada", [enroll_item(5)])
        faces = g.faces(g.index.ids)
        assert sorted((f.photo_path, f.kind, f.person) for f in faces.values()) == [
            ("/photos/1.jpg", "indexed", None), ("/photos/1.jpg", "indexed", None),
            ("/photos/5.jpg", "enrolled", "Ada")]
        assert {f.box for f in faces.values() if f.person} == {Box(10, 10, 30, 35)}


def test_moves_update_the_path(tmp_path):
    with open_gallery(tmp_path) as g:
        g.write(BatchWrite(photos=[photo(1)]))
        known = g.known_photos([f"{1:064x}"])[f"{1:064x}"]
        g.write(BatchWrite(moves=[(known.id, "/elsewhere/renamed.jpg")]))
        assert g.known_photos([f"{1:064x}"])[f"{1:064x}"].path == "/elsewhere/renamed.jpg"
        assert g.index.count == 1


def test_a_write_that_meets_a_concurrent_insert_is_tried_once_more(tmp_path, monkeypatch):
    """Two runs indexing one photo at once: the loser's unique constraint fails, and its second attempt finds
    the winner's row and adds nothing."""
    with open_gallery(tmp_path) as winner, open_gallery(tmp_path) as loser:
        real_write = loser._write
        attempts = []

        def racing_write(batch):
            if not attempts:  # the winner commits between the loser's look-up and its insert
                attempts.append(1)
                winner.write(BatchWrite(photos=[photo(1, 2)]))
                raise IntegrityError("INSERT INTO photos", {}, Exception("UNIQUE constraint failed: photos.sha256"))
            return real_write(batch)

        monkeypatch.setattr(loser, "_write", racing_write)
        assert loser.write(BatchWrite(photos=[photo(1, 2)])) == 0
        assert rows_of(loser) == (1, 2)


def rows_of(g: Gallery) -> tuple[int, int]:
    with g.session() as s:
        return s.scalar(select(func.count(PhotoRow.id))), s.scalar(select(func.count(FaceRow.id)))
