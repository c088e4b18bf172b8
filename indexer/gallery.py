"""The gallery of one home: the database (the truth) and the FAISS index (a cache of its vectors) kept in step.

Every write goes to the database first, in one transaction, and only then to the index; the index is saved
when the gallery is closed. A run killed in between leaves an index whose sidecar disagrees with the
database, and the next `Gallery` rebuilds it from the database.

The index type follows the number of vectors (`indexer.vectors.Scale`). A gallery that grows or shrinks
across a threshold keeps its index type while open and is rebuilt as the new type when it is saved (on
close); a saved index of the wrong type for its size (written by an older version) is rebuilt when loaded.
An IVF index is trained, when it is built, on a seeded random sample of the database's vectors, and
re-ranks its shortlists with the exact vectors read from the database.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import (
    ENROLLED, ENROLLED_FACE, FAILED, INDEXED, INDEXED_FACE, ClusterFaceRow, ClusterRow, FaceRow, ModelRow, PersonRow,
    PhotoRow, RejectionRow, clear_write_ahead_log, connect, session_factory, vacuum_deleted_rows,
)
from indexer.errors import ModelChanged
from indexer.vectors import EXACT, Scale, VectorIndex, from_bytes, to_bytes
from models.extractor import ModelInfo
from models.faces import Box, Face

if TYPE_CHECKING:
    from indexer.photos import Photo
    from indexer.pipeline import EmbeddedFace

# The tables `forget` deletes from or changes, vacuumed after it on PostgreSQL
FORGET_TABLES = ("people", "faces", "photos", "face_rejections", "cluster_faces")
_ROWS_PER_FETCH = 10_000


@dataclass(frozen=True)
class KnownPhoto:
    """A photo the database already holds, as far as indexing needs to know."""

    id: int
    path: str
    status: str
    stale_faces: int  # faces whose vector is from another extractor version


@dataclass
class BatchWrite:
    """All that one batch of indexing writes, in one transaction."""

    photos: list[Photo] = field(default_factory=list)  # new photos, failed ones, enrolled -> indexed
    moves: list[tuple[int, str]] = field(default_factory=list)  # photo id, the path where it is now
    vectors: list[tuple[int, np.ndarray]] = field(default_factory=list)  # face id, vector re-embedded now


@dataclass(frozen=True)
class StoredFace:
    """A face row as answers report it."""

    id: int
    photo_path: str
    box: Box
    score: float
    kind: str
    person: str | None


@dataclass(frozen=True)
class PersonCount:
    name: str
    enrolled_faces: int  # under any extractor version
    given_faces: int = 0  # gallery faces given to them (a named cluster, a moved face), under any version


@dataclass(frozen=True)
class Counts:
    photos: int  # in the gallery (status indexed)
    enrolled_photos: int  # only used for enrollment
    failed: int
    faces: int  # under the current extractor
    gallery_faces: int  # faces of kind indexed under the current extractor
    stale_faces: int  # under another extractor version: not searchable until re-embedded
    people: int
    clusters: int = 0  # groups of unnamed faces (`facesearch cluster`)
    clustered_faces: int = 0
    corrections: int = 0  # faces marked as not a person (`facesearch reject`, or moved away from one)


@dataclass(frozen=True)
class EnrollResult:
    added: tuple[str, ...]  # paths whose face was enrolled now
    skipped: tuple[tuple[str, str], ...]  # (path, reason): already enrolled, or enrolled as someone else


class Gallery:
    """The database and the vector index of one home, for one extractor model (its version, dim, threshold).

    Open it with `Gallery.open(url, index_path, model)` and close it (or use `with`) so the index is saved.
    `scale` chooses the index type by size (the engine's defaults unless a test forces another).
    """

    def __init__(self, engine: Engine, index_path: Path, model: ModelInfo, scale: Scale | None = None):
        self.engine = engine
        self.index_path = Path(index_path)
        self.model = model
        self.scale = scale or Scale()
        self._sessions = session_factory(engine)
        self._index: VectorIndex | None = None
        self._dirty = False
        self.rebuilt = False  # whether opening found the saved index out of step and rebuilt it
        self.caught_up = 0  # faces written elsewhere since the saved index, added to it on opening (`_catch_up`)
        self.rebuilt_because: str | None = None  # why the saved index was not used, when a saved one was there
        self.vacuum_problem: str | None = None  # why the last `forget` could not vacuum (PostgreSQL), if it could not
        self._register_model()

    @classmethod
    def open(cls, url: str, index_path: Path, model: ModelInfo, scale: Scale | None = None) -> Gallery:
        return cls(connect(url), index_path, model, scale)

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Save the index if it changed, and release the database."""
        try:
            self.save_index()
        finally:
            self.engine.dispose()

    def session(self) -> Session:
        return self._sessions()

    # -- the index ---------------------------------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        """The vector index of the current model's faces, loaded from disk or rebuilt when out of step."""
        if self._index is None:
            loaded = VectorIndex.load(self.index_path, self.stored_vectors, self.scale)
            count, max_id = self._vector_stats()
            if loaded is not None:
                index, sidecar = loaded
                wanted = self.scale.index_type(count)
                if (sidecar.model_version == self.model.version and sidecar.dim == self.model.dim
                        and sidecar.index_type == wanted and sidecar.count < count
                        and self._catch_up(index, sidecar.max_id, count - sidecar.count)):
                    self._index = index
                    return index
                if (sidecar.model_version != self.model.version or sidecar.dim != self.model.dim
                        or sidecar.count != count or sidecar.max_id != max_id):
                    reason = "out of step with the database"
                elif sidecar.index_type != wanted:
                    reason = f"of type {sidecar.index_type}, but {count} vectors are searched with {wanted}"
                else:
                    self._index = index
                    return index
            else:
                reason = "damaged or unreadable"
            exists = self.index_path.exists()
            self._index = self.rebuild_index()
            if exists:
                self.rebuilt_because = f"{self.index_path} was {reason}; it was rebuilt from the database"
        return self._index

    def _catch_up(self, index: VectorIndex, saved_max_id: int, missing: int) -> bool:
        """Add to a saved index the faces written since it was saved, by other runs or other machines sharing
        the database: those of the current model with ids above the largest it holds. Only when they are
        exactly the `missing` faces (nothing it holds was removed meanwhile) is it done; then True, and the
        index is saved on close. Otherwise False, and the caller rebuilds it from the database."""
        query = (select(FaceRow.id, FaceRow.vector)
                 .where(FaceRow.model_version == self.model.version, FaceRow.id > saved_max_id)
                 .order_by(FaceRow.id).limit(missing + 1))
        with self.session() as s:
            rows = s.execute(query).all()
        if len(rows) != missing:
            return False
        index.add(np.array([r.id for r in rows], np.int64),
                  np.stack([from_bytes(r.vector, self.model.dim) for r in rows]))
        self._dirty = True
        self.caught_up = missing
        return True

    @property
    def index_type(self) -> str:
        return self.index.type

    def rebuild_index(self) -> VectorIndex:
        """A new index holding every vector of the current model in the database, of the type its number
        of vectors calls for (an IVF index trained on a sample of them); it is saved on close."""
        count, _ = self._vector_stats()
        index_type = self.scale.index_type(count)
        training = None if index_type == EXACT else self._training_sample(self.scale.training_size(index_type, count))
        index = VectorIndex.new(self.model.dim, index_type, training, self.stored_vectors, self.scale)
        query = (select(FaceRow.id, FaceRow.vector).where(FaceRow.model_version == self.model.version)
                 .execution_options(yield_per=_ROWS_PER_FETCH))
        with self.session() as s:
            for chunk in s.execute(query).partitions():
                ids = np.array([row.id for row in chunk], np.int64)
                vectors = np.stack([from_bytes(row.vector, self.model.dim) for row in chunk])
                index.add(ids, vectors)
        self._index = index
        self._dirty = True
        self.rebuilt = True
        return index

    def save_index(self, on_step: Callable[[str], None] | None = None) -> None:
        """Write the index if it changed. When the database meanwhile holds other vectors than it (another
        process wrote there), it is rebuilt from the database first, so a save never drops their vectors.
        `on_step` is told the steps of the file writes (see `models.files.write_atomic`)."""
        if self._index is not None and self._dirty:
            if (self._vector_stats() != (self._index.count, max(self._index.ids, default=-1))
                    or self._index.type != self.scale.index_type(self._index.count)):
                self.rebuild_index()
            self._index.save(self.index_path, self.model.version, on_step)
            self._dirty = False

    def stored_vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of the current model that the database holds for these face ids: (those ids, in the
        order asked, (n, dim) vectors). The exact copy an IVF index re-ranks with."""
        ids = np.asarray(ids, np.int64)
        found: dict[int, bytes] = {}
        with self.session() as s:
            for start in range(0, len(ids), 500):
                query = select(FaceRow.id, FaceRow.vector).where(FaceRow.id.in_(ids[start:start + 500].tolist()),
                                                                 FaceRow.model_version == self.model.version)
                found.update((i, v) for i, v in s.execute(query))
        held = [i for i in ids.tolist() if i in found]
        vectors = np.zeros((len(held), self.model.dim), np.float32)
        for row, i in enumerate(held):
            vectors[row] = from_bytes(found[i], self.model.dim)
        return np.array(held, np.int64), vectors

    def _training_sample(self, size: int) -> np.ndarray:
        """`size` vectors of the current model, drawn at random (seeded) from the database's."""
        with self.session() as s:
            ids = np.array(s.scalars(select(FaceRow.id).where(FaceRow.model_version == self.model.version)).all(),
                           np.int64)
        chosen = np.sort(np.random.default_rng(0).choice(ids, size=min(size, len(ids)), replace=False))
        return self.stored_vectors(chosen)[1]

    def _load_index(self) -> None:
        # loaded (or rebuilt) before a write, so that a rebuild never counts the rows being written twice
        _ = self.index

    def _add_to_index(self, ids: list[int], vectors: list[np.ndarray]) -> None:
        if ids and self._index is not None:
            self._index.add(np.array(ids, np.int64), np.stack(vectors))
            self._dirty = True

    def _vector_stats(self) -> tuple[int, int]:
        with self.session() as s:
            count, max_id = s.execute(
                select(func.count(FaceRow.id), func.max(FaceRow.id)).where(FaceRow.model_version == self.model.version)
            ).one()
        return int(count), int(max_id) if max_id is not None else -1

    def _register_model(self) -> None:
        with self.session() as s, s.begin():
            row = s.scalar(select(ModelRow).where(ModelRow.version == self.model.version))
            if row is None:
                s.add(ModelRow(version=self.model.version, dim=self.model.dim, threshold=self.model.threshold,
                               threshold_far=self.model.threshold_far))
            elif row.dim != self.model.dim:
                raise ModelChanged(f"model version {self.model.version} is recorded with dimension {row.dim}, "
                                 f"but the extractor gives {self.model.dim}: give the new weights a new version")

    # -- indexing ----------------------------------------------------------------------------------------------

    def known_photos(self, hashes: Iterable[str]) -> dict[str, KnownPhoto]:
        """The photos already in the database among these content hashes, by hash."""
        hashes = list(set(hashes))
        if not hashes:
            return {}
        stale = (select(FaceRow.photo_id, func.count(FaceRow.id).label("n"))
                 .where(FaceRow.model_version != self.model.version).group_by(FaceRow.photo_id).subquery())
        query = (select(PhotoRow.sha256, PhotoRow.id, PhotoRow.path, PhotoRow.status, stale.c.n)
                 .outerjoin(stale, stale.c.photo_id == PhotoRow.id).where(PhotoRow.sha256.in_(hashes)))
        with self.session() as s:
            return {r.sha256: KnownPhoto(r.id, r.path, r.status, int(r.n or 0)) for r in s.execute(query)}

    def stale_photos(self) -> list[tuple[int, str, str]]:
        """(id, path, sha256) of every photo with a face whose vector is from another extractor version."""
        query = (select(PhotoRow.id, PhotoRow.path, PhotoRow.sha256)
                 .where(select(FaceRow.id).where(FaceRow.photo_id == PhotoRow.id,
                                                 FaceRow.model_version != self.model.version).exists())
                 .order_by(PhotoRow.id))
        with self.session() as s:
            return [(i, path, sha) for i, path, sha in s.execute(query)]

    def stale_faces(self, photo_id: int) -> list[tuple[int, Face]]:
        """The faces of a photo whose vectors are from another extractor version: (face id, face)."""
        with self.session() as s:
            rows = s.scalars(select(FaceRow).where(FaceRow.photo_id == photo_id,
                                                   FaceRow.model_version != self.model.version)).all()
            return [(r.id, _face_of(r)) for r in rows]

    def write(self, batch: BatchWrite) -> int:
        """Write one batch in one transaction, then add its vectors to the index; returns faces added."""
        self._load_index()
        new_ids, new_vectors, added = _once_more_on_conflict(lambda: self._write(batch))
        self._add_to_index(new_ids, new_vectors)
        return added

    def _write(self, batch: BatchWrite) -> tuple[list[int], list[np.ndarray], int]:
        new_ids: list[int] = []
        new_vectors: list[np.ndarray] = []
        with self.session() as s, s.begin():
            for photo_id, path in batch.moves:
                s.execute(update(PhotoRow).where(PhotoRow.id == photo_id).values(path=path))
            for face_id, vector in batch.vectors:
                s.execute(update(FaceRow).where(FaceRow.id == face_id)
                          .values(vector=to_bytes(vector), model_version=self.model.version))
                new_ids.append(face_id)
                new_vectors.append(vector)
            rows: list[tuple[FaceRow, np.ndarray]] = []
            # the batch's known photos and the paths with a recorded failure, in two queries rather than two per
            # photo (those took a fifth of `index`'s time on LFW photos); photos added below join `known`, so a
            # file twice in one batch is stored once
            shas = [outcome.sha256 for outcome in batch.photos]
            known = {p.sha256: p for p in s.scalars(select(PhotoRow).where(PhotoRow.sha256.in_(shas)))} if shas else {}
            paths = [outcome.path for outcome in batch.photos if outcome.error is None]
            failed_at = set(s.scalars(select(PhotoRow.path).where(PhotoRow.status == FAILED,
                                                                  PhotoRow.path.in_(paths)))) if paths else set()
            for outcome in batch.photos:
                photo = known.get(outcome.sha256)
                if photo is None:
                    photo = PhotoRow(sha256=outcome.sha256, path=outcome.path, size_bytes=outcome.size_bytes,
                                     status=INDEXED)
                    s.add(photo)
                    known[outcome.sha256] = photo
                elif photo.status == INDEXED:
                    continue  # indexed meanwhile (by another run): its faces are there already
                photo.path = outcome.path
                photo.size_bytes = outcome.size_bytes
                photo.width, photo.height = outcome.width, outcome.height
                if outcome.error is not None:
                    photo.status, photo.error = FAILED, outcome.error
                    continue
                photo.status, photo.error = INDEXED, None
                # a failure recorded at this path is about a file that is now readable (or replaced)
                if outcome.path in failed_at:
                    s.execute(delete(PhotoRow).where(PhotoRow.path == outcome.path, PhotoRow.status == FAILED,
                                                     PhotoRow.sha256 != outcome.sha256))
                for ef in outcome.faces:
                    row = _face_row(ef, self.model.version, INDEXED_FACE)
                    photo.faces.append(row)
                    rows.append((row, ef.vector))
            s.flush()  # gives the new rows their ids
            new_ids += [row.id for row, _ in rows]
            new_vectors += [v for _, v in rows]
        return new_ids, new_vectors, len(rows)

    # -- people ------------------------------------------------------------------------------------------------

    def enroll(self, name: str, items: list[Photo]) -> EnrollResult:
        """Add the face of each photo (its one face, as `indexer.pipeline.main_faces` chose it) as an enrolled face of
        `name` (created if new), in one transaction."""
        self._load_index()
        ids, vectors, result = _once_more_on_conflict(lambda: self._enroll(name, items))
        self._add_to_index(ids, vectors)
        return result

    def _enroll(self, name: str, items: list[Photo]) -> tuple[list[int], list[np.ndarray], EnrollResult]:
        added: list[str] = []
        skipped: list[tuple[str, str]] = []
        rows: list[tuple[FaceRow, np.ndarray]] = []
        with self.session() as s, s.begin():
            person, _ = person_row(s, name, create=True)
            for item in items:
                photo = s.scalar(select(PhotoRow).where(PhotoRow.sha256 == item.sha256))
                if photo is None:
                    photo = PhotoRow(sha256=item.sha256, path=item.path, size_bytes=item.size_bytes,
                                     width=item.width, height=item.height, status=ENROLLED)
                    s.add(photo)
                    s.flush()
                elif photo.status == FAILED:
                    photo.status, photo.error = ENROLLED, None
                    photo.width, photo.height = item.width, item.height
                if photo.status == ENROLLED and photo.path != item.path:
                    photo.path = item.path
                existing = s.execute(
                    select(PersonRow.name).join(FaceRow, FaceRow.person_id == PersonRow.id)
                    .where(FaceRow.photo_id == photo.id, FaceRow.kind == ENROLLED_FACE)
                ).scalars().all()
                if name in existing:
                    skipped.append((item.path, f"already enrolled as {name}"))
                    continue
                if existing:
                    skipped.append((item.path, f"its face is already enrolled as {existing[0]}"))
                    continue
                # an enrolment undone by `move FACE unknown` or `reject` left its face stored with no person:
                # enrolling the photo again gives that face back instead of storing a second one
                orphan = s.scalar(select(FaceRow).where(FaceRow.photo_id == photo.id, FaceRow.kind == ENROLLED_FACE,
                                                        FaceRow.person_id.is_(None),
                                                        FaceRow.model_version == self.model.version))
                if orphan is not None:
                    orphan.person_id = person.id
                    s.execute(delete(RejectionRow).where(RejectionRow.face_id == orphan.id,
                                                         RejectionRow.person_id == person.id))
                    added.append(item.path)
                    continue
                row = _face_row(item.faces[0], self.model.version, ENROLLED_FACE)
                row.photo_id = photo.id
                row.person_id = person.id
                s.add(row)
                rows.append((row, item.faces[0].vector))
                added.append(item.path)
            s.flush()
            ids = [row.id for row, _ in rows]
        return ids, [v for _, v in rows], EnrollResult(tuple(added), tuple(skipped))

    def forget(self, name: str) -> tuple[int, int] | None:
        """Delete a person, their enrolled faces and the photos only used to enroll them, from the database and
        the index; faces of gallery photos assigned to them go back to unknown. Returns (faces removed,
        photos removed), or None when no one has that name.

        Nothing of them is left behind: their vectors leave the saved index at once, SQLite zeroes the deleted
        rows (secure_delete) and the write-ahead log is emptied, so their name is nowhere in the home's files.
        On PostgreSQL the tables it touched are rewritten without the deleted row versions (`VACUUM FULL`);
        when that is refused (the rights it needs), `vacuum_problem` says why."""
        self._load_index()
        with self.session() as s, s.begin():
            person, _ = person_row(s, name)
            if person is None:
                return None
            face_ids = s.scalars(select(FaceRow.id).where(FaceRow.person_id == person.id,
                                                          FaceRow.kind == ENROLLED_FACE)).all()
            photo_ids = set(s.scalars(select(FaceRow.photo_id).where(FaceRow.id.in_(face_ids))).all())
            s.execute(delete(FaceRow).where(FaceRow.id.in_(face_ids)))
            s.execute(update(FaceRow).where(FaceRow.person_id == person.id).values(person_id=None))
            s.execute(delete(PersonRow).where(PersonRow.id == person.id))
            orphans = s.scalars(
                select(PhotoRow.id).where(PhotoRow.id.in_(photo_ids), PhotoRow.status == ENROLLED,
                                          ~select(FaceRow.id).where(FaceRow.photo_id == PhotoRow.id).exists())
            ).all()
            s.execute(delete(PhotoRow).where(PhotoRow.id.in_(orphans)))
        if self._index is not None:
            self._index.remove(np.array(face_ids, np.int64))
            self._dirty = True
        self.save_index()
        clear_write_ahead_log(self.engine)
        self.vacuum_problem = vacuum_deleted_rows(self.engine, FORGET_TABLES)
        return len(face_ids), len(orphans)

    def person_names(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(PersonRow.name).order_by(PersonRow.name)))

    def people(self) -> list[PersonCount]:
        """Everyone enrolled or named, by name, with their counts of enrolled faces and of gallery faces given
        to them."""
        enrolled = func.count(case((FaceRow.kind == ENROLLED_FACE, FaceRow.id)))
        given = func.count(case((FaceRow.kind == INDEXED_FACE, FaceRow.id)))
        query = (select(PersonRow.name, enrolled, given).outerjoin(FaceRow, FaceRow.person_id == PersonRow.id)
                 .group_by(PersonRow.id, PersonRow.name).order_by(PersonRow.name))
        with self.session() as s:
            return [PersonCount(name, int(n), int(g)) for name, n, g in s.execute(query)]

    def person_faces(self) -> dict[int, str]:
        """Face id to person name, for every face with a person under the current model."""
        query = (select(FaceRow.id, PersonRow.name).join(PersonRow, FaceRow.person_id == PersonRow.id)
                 .where(FaceRow.model_version == self.model.version))
        with self.session() as s:
            return {i: name for i, name in s.execute(query)}

    def vectors_of(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The face ids (n,) and vectors (n, dim) of a person's faces under the current model."""
        query = (select(FaceRow.id, FaceRow.vector).join(PersonRow, FaceRow.person_id == PersonRow.id)
                 .where(PersonRow.name == name, FaceRow.model_version == self.model.version))
        with self.session() as s:
            rows = s.execute(query).all()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.model.dim), np.float32)
        return (np.array([r.id for r in rows], np.int64),
                np.stack([from_bytes(r.vector, self.model.dim) for r in rows]))

    # -- reading -----------------------------------------------------------------------------------------------

    def faces(self, ids: Iterable[int]) -> dict[int, StoredFace]:
        """The face rows with these ids, by id."""
        ids = list(set(int(i) for i in ids))
        out: dict[int, StoredFace] = {}
        with self.session() as s:
            for start in range(0, len(ids), 500):
                query = (select(FaceRow, PhotoRow.path, PersonRow.name)
                         .join(PhotoRow, FaceRow.photo_id == PhotoRow.id)
                         .outerjoin(PersonRow, FaceRow.person_id == PersonRow.id)
                         .where(FaceRow.id.in_(ids[start:start + 500])))
                for row, path, person in s.execute(query):
                    out[row.id] = StoredFace(row.id, path, Box(row.x0, row.y0, row.x1, row.y1), row.score,
                                             row.kind, person)
        return out

    def stored_boxes(self, hashes: Sequence[str]) -> list[list[tuple[int, Box]]]:
        """For each photo content hash, the (face id, box) of the faces stored for that photo (none when the
        photo is not in the database)."""
        by_hash: dict[str, list[tuple[int, Box]]] = {}
        wanted = list(set(hashes))
        with self.session() as s:
            for start in range(0, len(wanted), 500):
                query = (select(PhotoRow.sha256, FaceRow.id, FaceRow.x0, FaceRow.y0, FaceRow.x1, FaceRow.y1)
                         .join(FaceRow, FaceRow.photo_id == PhotoRow.id)
                         .where(PhotoRow.sha256.in_(wanted[start:start + 500])).order_by(FaceRow.id))
                for sha, face_id, x0, y0, x1, y1 in s.execute(query):
                    by_hash.setdefault(sha, []).append((face_id, Box(x0, y0, x1, y1)))
        return [by_hash.get(h, []) for h in hashes]

    def counts(self) -> Counts:
        with self.session() as s:
            return count_rows(s, self.model.version)

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every photo that could not be read, by path."""
        with self.session() as s:
            rows = s.execute(select(PhotoRow.path, PhotoRow.error).where(PhotoRow.status == FAILED)
                             .order_by(PhotoRow.path)).all()
        return [(p, e or "") for p, e in rows]


def _once_more_on_conflict(attempt):
    """Run a write transaction; if another process inserted the same photo or person at the same moment (a
    unique constraint fails), run it once more: the second attempt finds their rows and uses them."""
    try:
        return attempt()
    except IntegrityError:
        return attempt()


def person_row(s: Session, name: str, create: bool = False) -> tuple[PersonRow | None, bool]:
    """The person called `name` (None when there is none, unless `create`: then a new row, flushed so it has
    its id), and whether it was created now."""
    person = s.scalar(select(PersonRow).where(PersonRow.name == name))
    if person is None and create:
        person = PersonRow(name=name)
        s.add(person)
        s.flush()
        return person, True
    return person, False


def count_rows(session: Session, model_version: str | None) -> Counts:
    """Rows of each kind; faces counted under `model_version` (under any version when None)."""
    s = session
    by_status = dict(s.execute(select(PhotoRow.status, func.count(PhotoRow.id)).group_by(PhotoRow.status)).all())
    current = FaceRow.model_version == model_version if model_version is not None else FaceRow.id.is_not(None)
    faces = s.scalar(select(func.count(FaceRow.id)).where(current))
    gallery = s.scalar(select(func.count(FaceRow.id)).where(current, FaceRow.kind == INDEXED_FACE))
    stale = s.scalar(select(func.count(FaceRow.id)).where(~current)) if model_version is not None else 0
    people = s.scalar(select(func.count(PersonRow.id)))
    clusters = s.scalar(select(func.count(ClusterRow.id)))
    clustered = s.scalar(select(func.count(ClusterFaceRow.face_id)))
    corrections = s.scalar(select(func.count()).select_from(RejectionRow))
    return Counts(by_status.get(INDEXED, 0), by_status.get(ENROLLED, 0), by_status.get(FAILED, 0),
                  int(faces), int(gallery), int(stale), int(people), int(clusters), int(clustered), int(corrections))


def _face_row(ef: EmbeddedFace, model_version: str, kind: str) -> FaceRow:
    f = ef.face
    return FaceRow(x0=float(f.box.x0), y0=float(f.box.y0), x1=float(f.box.x1), y1=float(f.box.y1),
                   landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in f.landmarks],
                   score=float(f.score), vector=to_bytes(ef.vector), model_version=model_version, kind=kind)


def _face_of(row: FaceRow) -> Face:
    return Face(Box(row.x0, row.y0, row.x1, row.y1), np.array(row.landmarks, np.float32), row.score)
