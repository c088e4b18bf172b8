"""Answering: who is in a photo (`who`), whether two photos show one person (`verify`), where a person appears
(`search`), who is enrolled (`people`, `person`), forgetting a person (`forget`) and the state of a home
(`status`), with the values they return.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db import connect, session_factory
from sqlalchemy.exc import SQLAlchemyError

from facesearch import home, thresholds
from facesearch.config import Config
from facesearch.errors import (
    DatabaseUnavailable, ModelMismatch, ModelNotFound, NoFaceFound, NoPeopleEnrolled, NothingIndexed,
    PhotoUnreadable, UnknownPerson,
)
from indexer import Counts, Gallery, count_rows
from indexer.library import faces_named, match_people
from indexer.photos import Photo, decode_in_parts, decoded, read_photo
from indexer.pipeline import FaceDetector, FaceExtractor
from models.distance import cosine_distance
from models.faces import Box


UNKNOWN = "unknown"  # the name given to a face that is no one enrolled; no person may be called this


@dataclass(frozen=True)
class FaceAnswer:
    """Who one face in a query photo is."""

    box: Box  # pixels of the photo as decoded
    name: str  # the enrolled person, or UNKNOWN when no one is nearer than the threshold
    distance: float | None  # cosine distance to the nearest enrolled person; None when no one was in reach
    nearest: str | None  # that nearest person, named even when beyond the threshold
    score: float  # detector confidence, 0..1
    face_id: int | None = None  # the stored face, when the photo is indexed: what `move` and `reject` take


@dataclass(frozen=True)
class PhotoAnswer:
    """The faces of one query photo, or why it could not be read."""

    photo: Path
    faces: tuple[FaceAnswer, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    """Whether the main faces of two photos show one person."""

    photo_a: Path
    photo_b: Path
    box_a: Box
    box_b: Box
    same: bool
    distance: float  # cosine distance between the two faces
    threshold: float  # `same` means distance < threshold
    far: float | None  # the false-accept rate the threshold was calibrated for (None: given by hand)
    model_version: str


@dataclass(frozen=True)
class Sighting:
    """A gallery photo where a person appears."""

    photo: str
    box: Box
    distance: float  # cosine distance to the nearest of the person's reference faces
    face_id: int | None = None  # that face in the gallery


@dataclass(frozen=True)
class PersonSummary:
    name: str
    enrolled_faces: int
    photos: int  # gallery photos where they are found under the threshold
    given_faces: int = 0  # gallery faces given to them (a named cluster, a moved face)


@dataclass(frozen=True)
class Forgotten:
    name: str
    faces: int  # enrolled faces removed from the database and the index
    photos: int  # photos removed that were only used to enroll them
    index_size: int  # vectors left in the index
    vacuum_problem: str | None = None  # PostgreSQL: why the deleted rows could not be vacuumed out of its files


@dataclass(frozen=True)
class Status:
    home: Path
    db_url: str  # with any password masked
    model_version: str | None  # None when the extractor's weights are missing
    threshold: float | None
    threshold_far: float | None
    index_type: str | None
    index_size: int | None  # vectors in the index
    counts: Counts
    failures: tuple[tuple[str, str], ...]  # (path, reason)
    note: str | None = None  # what to do about the state, if anything
    naming_threshold: float | None = None  # what `who` and `search` name faces with (`open_set_threshold`)
    naming_means: str | None = None  # that threshold and what it means, in words


def who(photos: Sequence[str | Path], config: Config, *, detector: FaceDetector | None = None,
        extractor: FaceExtractor | None = None,
        on_threshold: Callable[[thresholds.OpenSetThreshold], None] | None = None) -> list[PhotoAnswer]:
    """Name every face of each photo: the person nearest to it when nearer than the threshold, else UNKNOWN.

    A person's reference faces are their enrolled faces and the gallery faces given to them. When a photo is
    in the gallery, each face is matched to its stored face (`face_id`), and corrections made to that face are
    kept: it is never named after a person it was rejected for. A photo that cannot be read, or a path that
    does not exist, gets an answer with `error` set; the others are still answered. `on_threshold`, when given,
    is told the threshold the faces are named at, once it is known."""
    given = home.some_existing(photos)
    paths = [p for p in given if p.exists()]
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        person_of = gallery.person_faces()
        if not person_of:
            _no_people(gallery, config)
        naming = thresholds.naming_threshold_for(config, extractor, gallery, person_of)
        if on_threshold is not None:
            on_threshold(naming)
        threshold = naming.threshold
        pipeline = home.pipeline(config, detector, extractor)
        answers: list[PhotoAnswer] = [PhotoAnswer(p, error="no such file or folder") for p in given
                                      if not p.exists()]
        for first in range(0, len(paths), config.batch_size):
            # read as `index` reads them: hashed (to find the stored faces of an indexed photo) and decoded
            # from the same bytes, in parts of bounded pixels
            photos = [read_photo(p) for p in paths[first:first + config.batch_size]]
            for part in decode_in_parts(photos, pipeline.max_batch_pixels):
                part = pipeline.photo_faces(part)
                stored = gallery.stored_boxes([ph.sha256 if ph.error is None else "" for ph in part])
                answers += [_answer(gallery, ph, boxes, threshold, config.k, person_of)
                            for ph, boxes in zip(part, stored)]
    order = {p: n for n, p in enumerate(given)}
    return sorted(answers, key=lambda a: order[a.photo])


def _answer(gallery: Gallery, photo: Photo, stored: Sequence[tuple[int, Box]], threshold: float, k: int,
            person_of: dict[int, str]) -> PhotoAnswer:
    """`who`'s answer for one photo, its faces found (`stored`: the boxes of its stored faces, if indexed)."""
    if photo.error is not None:
        return PhotoAnswer(Path(photo.path), error=photo.error)
    faces = []
    if photo.faces:
        face_ids = [stored_face_id(ef.face.box, stored) for ef in photo.faces]
        matches = match_people(gallery, np.stack([ef.vector for ef in photo.faces]), threshold, k, face_ids,
                               person_of)
        for ef, m, face_id in zip(photo.faces, matches, face_ids):
            faces.append(FaceAnswer(ef.face.box, m.name or UNKNOWN, m.distance, m.nearest, float(ef.face.score),
                                    face_id))
    return PhotoAnswer(Path(photo.path), tuple(faces))


def stored_face_id(box: Box, stored: Sequence[tuple[int, Box]], min_overlap: float = 0.5) -> int | None:
    """The stored face whose box overlaps `box` most (intersection over union at least `min_overlap`), or None.
    The same photo through the same detector gives the same boxes; the margin absorbs rounding."""
    best, best_overlap = None, min_overlap
    for face_id, other in stored:
        overlap = box.overlap(other)
        if overlap >= best_overlap:
            best, best_overlap = face_id, overlap
    return best


def _no_people(gallery: Gallery, config: Config):
    names = gallery.person_names()
    if names:
        raise ModelMismatch(
            f"{len(names)} people are enrolled, but their faces were embedded by another extractor than "
            f"{gallery.model.version}.\nRun: facesearch reindex"
        )
    raise NoPeopleEnrolled(
        f"no one is enrolled in {config.home}, so no face can be named.\n"
        "Enroll people first: facesearch enroll NAME PHOTO... (or: facesearch enroll --folders DIR)"
    )


def verify(photo_a: str | Path, photo_b: str | Path, config: Config, *, detector: FaceDetector | None = None,
           extractor: FaceExtractor | None = None) -> Verdict:
    """Compare the main face (largest, nearest the centre; the likeliest face where none reaches the detector's
    score, `models.detect.MAIN_FACE_MIN_SCORE`) of two photos against the calibrated threshold.

    PhotoNotFound, PhotoUnreadable or NoFaceFound name the photo at fault.
    """
    from models.detect import MAIN_FACE_MIN_SCORE, main_face

    paths = home.existing([photo_a, photo_b])
    images = []
    for p in paths:
        photo = decoded(read_photo(p))  # read as `index` reads it
        if photo.error is not None:
            raise PhotoUnreadable(f"{p}: {photo.error}. Check that it is a photo (jpg, png, webp, bmp, tiff or gif).")
        images.append(photo.image)
    extractor = extractor or home.load_extractor(config)
    pipeline = home.pipeline(config, detector, extractor)
    faces = []
    for p, image, found in zip(paths, images, pipeline.detect(images, min_score=MAIN_FACE_MIN_SCORE)):
        if isinstance(found, str):
            raise PhotoUnreadable(f"{p}: {found}")
        face = main_face(found, image.shape[1], image.shape[0], pipeline.detector.min_score)
        if face is None:
            raise NoFaceFound(f"{p}: no face found. Use a photo where the face is at least "
                              f"{config.min_face_px} pixels wide and turned to the camera.")
        faces.append(face)
    (a,), (b,) = pipeline.embed(images, [[f] for f in faces])
    distance = float(cosine_distance(a.vector, b.vector))
    threshold, far, _ = thresholds.threshold_in_use(config, extractor)
    return Verdict(paths[0], paths[1], faces[0].box, faces[1].box, distance < threshold, distance, threshold,
                   far, extractor.version)


def _sightings(gallery: Gallery, name: str, threshold: float, k: int,
               person_of: dict[int, str] | None = None) -> list[Sighting]:
    """Gallery photos with a face the naming rule names `name` (`indexer.library.faces_named`: exactly the
    faces `who` and `export` call `name`), nearest first, one entry per photo (its nearest such face)."""
    named = faces_named(gallery, name, threshold, k, person_of)
    per_photo: dict[str, Sighting] = {}
    for face_id, face in gallery.faces(named).items():
        d = named[face_id]
        if face.photo_path not in per_photo or d < per_photo[face.photo_path].distance:
            per_photo[face.photo_path] = Sighting(face.photo_path, face.box, d, face_id)
    return sorted(per_photo.values(), key=lambda s: (s.distance, s.photo))


def _unknown_person(gallery: Gallery, name: str) -> UnknownPerson:
    names = gallery.person_names()
    if not names:
        return UnknownPerson(f"no one is enrolled yet, so not {name!r}. Enroll them: facesearch enroll {name} PHOTO...")
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return UnknownPerson(f"no one named {name!r} is enrolled (enrolled: {listed}).\n"
                         f"Check the spelling (facesearch people lists everyone), or enroll them first.")


def search(name: str, config: Config, *, extractor: FaceExtractor | None = None,
           on_threshold: Callable[[thresholds.OpenSetThreshold], None] | None = None) -> list[Sighting]:
    """Every gallery photo where `name` appears (a face the naming rule gives `name`: given to them, or nearer
    than the threshold to one of their reference faces and to no one else's), nearest first, one entry per
    photo. `on_threshold`, when given, is told the threshold faces are named at, once it is known."""
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        if name not in gallery.person_names():
            raise _unknown_person(gallery, name)
        if gallery.counts().gallery_faces == 0:
            raise NothingIndexed(f"no gallery photo is indexed in {config.home} yet, so there is nowhere to look "
                                 f"for {name}. Index photos first: facesearch index FOLDER")
        person_of = gallery.person_faces()  # every face with a person, under the current extractor
        if name not in person_of.values():
            raise ModelMismatch(f"{name}'s faces were embedded by another extractor than {extractor.version}.\n"
                                "Run: facesearch reindex")
        naming = thresholds.naming_threshold_for(config, extractor, gallery, person_of)
        if on_threshold is not None:
            on_threshold(naming)
        return _sightings(gallery, name, naming.threshold, config.k, person_of)


def people(config: Config, *, extractor: FaceExtractor | None = None) -> list[PersonSummary]:
    """Everyone enrolled, by name, with their enrolled faces and the gallery photos they are found in."""
    if not home.has_database(config):
        return []
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        person_of = gallery.person_faces()
        threshold = thresholds.naming_threshold_for(config, extractor, gallery, person_of).threshold
        return [PersonSummary(p.name, p.enrolled_faces,
                              len(_sightings(gallery, p.name, threshold, config.k, person_of)), p.given_faces)
                for p in gallery.people()]


def person(name: str, config: Config, *, extractor: FaceExtractor | None = None) -> PersonSummary:
    """One enrolled person with their count of enrolled faces (photos not counted: 0); UnknownPerson if none."""
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        for p in gallery.people():
            if p.name == name:
                return PersonSummary(p.name, p.enrolled_faces, 0, p.given_faces)
        raise _unknown_person(gallery, name)


def forget(name: str, config: Config, *, extractor: FaceExtractor | None = None,
           on_wait: Callable[[str], None] | None = None) -> Forgotten:
    """Remove a person, their enrolled faces and the photos only used to enroll them from the database and the
    index (no confirmation asked). Nothing of them stays in the home: their name and vectors are gone from the
    database file (deleted rows are zeroed), its write-ahead log and the saved index. Their gallery photos stay
    indexed, as unknown faces."""
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait) as gallery:
        removed = gallery.forget(name)
        if removed is None:
            raise _unknown_person(gallery, name)
        return Forgotten(name, removed[0], removed[1], gallery.index.count, gallery.vacuum_problem)


def status(config: Config, *, extractor: FaceExtractor | None = None) -> Status:
    """Counts of photos, failures, faces and people, the model in use and the index; works on an empty home."""
    if not home.has_database(config):
        empty = f"{config.home} holds no database yet: index or enroll to start one."
        try:
            extractor = extractor or home.load_extractor(config)
        except ModelNotFound as e:
            return Status(config.home, config.db_shown, None, None, None, None, None, Counts(0, 0, 0, 0, 0, 0, 0),
                          (), note=f"{empty}\n{e}")
        threshold, far, _ = thresholds.threshold_in_use(config, extractor)
        naming = thresholds.open_set_threshold(config, extractor, 0, 0)
        return Status(config.home, config.db_shown, extractor.version, threshold, far, None, None,
                      Counts(0, 0, 0, 0, 0, 0, 0), (), empty, naming.threshold, naming.describe())
    try:
        extractor = extractor or home.load_extractor(config)
    except ModelNotFound as e:
        try:
            engine = connect(config.db_url)
            try:
                with session_factory(engine)() as s:
                    counts = count_rows(s, None)
            finally:
                engine.dispose()
        except SQLAlchemyError as db_error:
            home.raise_if_damaged(config, db_error)
            raise DatabaseUnavailable(f"cannot read the database {config.db_shown}: "
                                      f"{getattr(db_error, 'orig', None) or db_error}") from None
        return Status(config.home, config.db_shown, None, None, None, None, None, counts, (), note=str(e))
    with home.gallery(config, extractor.info, create=False) as gallery:
        counts = gallery.counts()
        note = None
        if counts.stale_faces:
            note = (f"{counts.stale_faces} faces hold vectors of another extractor and are not searched.\n"
                    "Run: facesearch reindex")
        threshold, far, _ = thresholds.threshold_in_use(config, extractor)
        naming = thresholds.naming_threshold_for(config, extractor, gallery)
        index_size = gallery.index.count
        if gallery.rebuilt_because:
            note = gallery.rebuilt_because + ("\n" + note if note else "")
        return Status(config.home, config.db_shown, extractor.version, threshold,
                      far, gallery.index_type, index_size, counts,
                      tuple(gallery.failures()), note, naming.threshold, naming.describe())
