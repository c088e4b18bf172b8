"""The public Python API: index folders, enroll people, name the faces in a photo, verify two photos, find a
person's photos, list and forget people, report the state of a home.

Every function takes a `Config` (see `facesearch.config.load_config`). Functions that need the models accept
a `detector` and an `extractor` (anything with `detect(images)`, resp. `embed(chips)`, `version` and `info`);
left out, the shipped ones are loaded once per process on first use. Distances are cosine distances
(`1 - a.b` of unit vectors, 0 for identical faces, up to 2); boxes are pixels of the photo as decoded.
"""
from __future__ import annotations

import functools
import hashlib
import os
import time
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from db import INDEXED_FACE, SchemaTooNew, connect, session_factory
from facesearch.config import Config
from facesearch.errors import (
    BadOutputPath, DatabaseDamaged, DatabaseUnavailable, EmptyHome, EngineUnavailable, InvalidName, ModelMismatch,
    ModelNotFound, ModelRefused, NoFaceFound, NoPeopleEnrolled, NothingIndexed, PhotoNotFound, PhotoUnreadable,
    UnknownPerson,
)
from indexer import (
    PHOTO_SUFFIXES, CheckReport, Counts, EnrolCheck, EnrollReport, Gallery, IndexReport, Pipeline, ReembedReport,
    check_gallery, count_rows, enroll_photos, index_paths, is_photo, reembed_stale, repair_index, scan,
)
from indexer.library import faces_named, match_people, nearest_person
from indexer.lock import hold_home
from indexer.pipeline import FaceDetector, FaceExtractor, enroll_people, reason_of
from indexer.private import create_private_file, loose, private_dir, tighten
from models.distance import cosine_distance
from models.files import write_atomic
from models.extractor import ModelInfo
from models.faces import Box
from models.image import ImageError, read_image

__all__ = [
    "FaceAnswer", "PhotoAnswer", "Verdict", "Sighting", "PersonSummary", "Forgotten", "Status", "EnrollReport",
    "IndexReport", "ReembedReport", "CheckReport", "Checked", "index", "check", "reindex", "enroll", "enroll_folders", "who", "verify", "search",
    "people", "person", "forget", "status", "annotate", "check_name", "nearest_person", "load_detector",
    "load_extractor", "UNKNOWN", "export", "Exported", "EXPORT_FORMATS",
]

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


# -- models, loaded once per process -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _extractor(path: str) -> FaceExtractor:
    from models.extractor import Extractor, ModelMissing
    from models.graph_check import UnsafeGraph

    try:
        return Extractor(path)
    except UnsafeGraph as e:
        raise ModelRefused(f"{e}.\nOnly graphs written by `facesearch train` (or of the same kinds) are run; "
                           "point FACESEARCH_MODEL (or --model) at one, or leave it unset for the shipped model."
                           ) from None
    except ModelMissing as e:
        raise ModelNotFound(
            f"{e}.\nThe extractor is not installed: put the trained model (extractor.keras with extractor.json) "
            "in models/weights/, or point FACESEARCH_MODEL (or --model) at one."
        ) from None


@functools.lru_cache(maxsize=4)
def _detector(max_side: int, min_face_px: int, min_score: float, graphs_dir: Path | None) -> FaceDetector:
    from models.detect import Detector

    # the detector batches by its own measure (pixels per MTCNN call), not by --batch-size
    return Detector(max_side=max_side, min_face_px=min_face_px, min_score=min_score, graph_cache=graphs_dir)


def load_extractor(config: Config) -> FaceExtractor:
    """The extractor at `config.model_path`, loaded once per process (its network loads on first use)."""
    return _extractor(str(config.model_path))


def load_detector(config: Config) -> FaceDetector:
    """The MTCNN detector with the config's settings, loaded once per process."""
    return _detector(config.max_side, config.min_face_px, config.min_score, config.graphs_dir)


# -- opening a home ------------------------------------------------------------------------------------------------


def _has_database(config: Config) -> bool:
    return config.db_file is None or config.db_file.exists()


def _require_database(config: Config) -> None:
    """EmptyHome when the home has no database yet (nothing was ever indexed or enrolled there)."""
    if not _has_database(config):
        raise EmptyHome(
            f"{config.home} holds no facesearch database yet: nothing was indexed or enrolled there.\n"
            f"Enroll people (facesearch --home {config.home} enroll NAME PHOTO...) and index photos "
            f"(facesearch --home {config.home} index FOLDER), or pass the --home you used before."
        )


@contextmanager
def _gallery(config: Config, model: ModelInfo, create: bool, writes: bool = False,
             on_wait: Callable[[str], None] | None = None):
    """The gallery of the home; with `create` False, EmptyHome where there is no database yet.

    With `writes`, the home's write lock is held until the gallery is closed (its index saved): another
    process writing to the same home is waited for, and `on_wait` told so once.
    """
    if not create:
        _require_database(config)
    with ExitStack() as stack:
        if writes:
            try:
                stack.enter_context(hold_home(config.home, on_wait))
            except OSError as e:
                raise DatabaseUnavailable(
                    f"cannot take the write lock in {config.home}: {e.strerror or e}.\n"
                    "Check that the home folder (--home) is writable."
                ) from None
        yield from _open_gallery(config, model, create)


class LooseHomeWarning(UserWarning):
    """A home that users other than its owner may read (the CLI shows it once per command)."""


_warned_homes: set[Path] = set()


def _warn_if_loose(home: Path) -> None:
    """Warn, once per home and process, when the home folder or a file in it is open to other users."""
    if home in _warned_homes:
        return
    found = loose(home)
    if found:
        _warned_homes.add(home)
        shown = ", ".join(f"{'the folder' if p == home else p.name} ({m:04o})" for p, m in found[:4])
        more = f" and {len(found) - 4} more" if len(found) > 4 else ""
        warnings.warn(LooseHomeWarning(
            f"{home} holds biometric data, but other users may read it: {shown}{more}. "
            f"Make it private with: facesearch --home {home} check --repair"), stacklevel=3)


def _open_gallery(config: Config, model: ModelInfo, create: bool):
    try:
        if create:
            private_dir(config.home)
            if config.db_file is not None:
                private_dir(config.db_file.parent)
                create_private_file(config.db_file)
        _warn_if_loose(config.home)
        gallery = Gallery.open(config.db_url, config.index_path, model)
    except ImportError as e:
        raise DatabaseUnavailable(
            f"cannot open the database {config.db_shown}: its driver is not installed ({e}).\n"
            "Install it (for PostgreSQL: pip install 'facesearch[postgres]' and a postgresql+psycopg:// URL), "
            "or check --db / FACESEARCH_DB."
        ) from None
    except SchemaTooNew as e:
        raise DatabaseUnavailable(f"cannot open the database {config.db_shown}: {e}") from None
    except (SQLAlchemyError, OSError) as e:
        _raise_if_damaged(config, e)
        raise DatabaseUnavailable(
            f"cannot open the database {config.db_shown}: {getattr(e, 'orig', None) or e}.\n"
            "Check --db / FACESEARCH_DB, and that the home folder is writable."
        ) from None
    except ValueError as e:
        raise ModelMismatch(str(e)) from None
    try:
        yield gallery
    except SQLAlchemyError as e:
        _raise_if_damaged(config, e)
        raise DatabaseUnavailable(f"database error on {config.db_shown}: {getattr(e, 'orig', None) or e}") from None
    finally:
        gallery.close()


def _raise_if_damaged(config: Config, error: Exception) -> None:
    """DatabaseDamaged, naming the file, when SQLite says the file is no database or a damaged one."""
    text = str(getattr(error, "orig", None) or error)
    if config.db_file is not None and ("not a database" in text or "malformed" in text):
        raise DatabaseDamaged(
            f"{config.db_file} is damaged or is not a facesearch database ({text}).\n"
            f"Restore it from a backup, or move it aside and index again (facesearch index FOLDER)."
        ) from None


def _pipeline(config: Config, detector: FaceDetector | None, extractor: FaceExtractor) -> Pipeline:
    return Pipeline(detector or load_detector(config), extractor, config.batch_size)


def threshold_in_use(config: Config, extractor: FaceExtractor) -> tuple[float, float | None, str]:
    """(threshold, the false-accept rate it was calibrated for, where it comes from): `--threshold` first,
    then a calibration on the user's own photos stored in the home (`facesearch calibrate`), then the
    model's own. A threshold given by hand has no known false-accept rate (None)."""
    if config.threshold is not None:
        return config.threshold, None, "given by hand"
    from facesearch.calibration import read_calibration

    cal = read_calibration(config.home, extractor.version)
    if cal is not None:
        return cal.threshold, cal.far, f"calibrated on your photos ({cal.created})"
    return extractor.info.threshold, extractor.info.threshold_far, "the model's"


def _threshold(config: Config, extractor: FaceExtractor) -> float:
    return threshold_in_use(config, extractor)[0]


@dataclass(frozen=True)
class OpenSetThreshold:
    """The threshold `who`, `search`, `people` and `export` name faces with, and what it means."""

    threshold: float
    stranger_rate: float | None  # the share of strangers it names as someone (None: not known)
    references: int  # reference faces a stranger is compared with
    people: int
    source: str  # how it was chosen

    def describe(self) -> str:
        """One line for the user: the threshold and what it means."""
        if self.stranger_rate is None:
            return f"threshold {self.threshold:.4f} ({self.source})"
        if self.references == 0:
            return (f"threshold {self.threshold:.4f}: no one is enrolled yet; it tightens as reference faces are "
                    f"added, to keep about {100 * self.stranger_rate:g} % of strangers named as someone")
        return (f"threshold {self.threshold:.4f}: about {100 * self.stranger_rate:g} % of strangers named as one of "
                f"{self.people} people ({self.references} reference faces); {self.source}")


def open_set_threshold(config: Config, extractor: FaceExtractor, references: int, people: int) -> OpenSetThreshold:
    """The threshold for naming faces among `people` with `references` reference faces in all (docs/library.md,
    "Strangers"). A threshold for one comparison lets strangers through once per reference face, so it is
    chosen for `config.stranger_rate` of strangers named as someone, from the model's false-accept curve
    (`models.thresholds.threshold_for_fpir`): the more reference faces, the stricter. `--threshold` overrides
    it; a calibration on the user's own photos caps it (the stricter of the two); a model without a curve
    (one trained before the curve was measured) keeps its one-to-one threshold."""
    from models.thresholds import threshold_for_fpir

    if config.threshold is not None:
        return OpenSetThreshold(config.threshold, None, references, people, "given by hand")
    curve = extractor.info.extra.get("far_curve")
    if not curve:
        one_to_one, _, source = threshold_in_use(config, extractor)
        return OpenSetThreshold(one_to_one, None, references, people,
                                f"{source} one-to-one threshold: the model has no false-accept curve")
    threshold, _ = threshold_for_fpir(curve, config.stranger_rate, references)
    source = f"from the model's false-accept curve ({curve.get('identities', '?')} held-out people)"
    from facesearch.calibration import read_calibration

    cal = read_calibration(config.home, extractor.version)
    if cal is not None and cal.threshold < threshold:
        threshold, source = cal.threshold, f"capped by your calibration ({cal.created})"
    return OpenSetThreshold(threshold, config.stranger_rate, references, people, source)


def naming_threshold(config: Config, *, extractor: FaceExtractor | None = None) -> OpenSetThreshold | None:
    """The threshold `who` and `search` use in this home now (None when the home has no database yet)."""
    if not _has_database(config):
        return None
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False) as gallery:
        return _naming_threshold(config, extractor, gallery)


def _naming_threshold(config: Config, extractor: FaceExtractor, gallery: Gallery,
                      person_of: dict[int, str] | None = None) -> OpenSetThreshold:
    """`open_set_threshold` for the reference faces of `gallery` (under the current model)."""
    person_of = gallery.person_faces() if person_of is None else person_of
    return open_set_threshold(config, extractor, len(person_of), len(set(person_of.values())))


def _some_existing(paths: Sequence[str | Path]) -> list[Path]:
    """The paths given (user's ~ expanded), those missing included: each is reported among the answers. When
    none exists there is nothing to do, and the first missing one is the error (PhotoNotFound)."""
    given = [Path(p).expanduser() for p in paths]
    if not any(p.exists() for p in given):
        _existing(given)
    return given


def _existing(paths: Sequence[str | Path]) -> list[Path]:
    out = []
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            raise PhotoNotFound(f"{p}: no such file or folder. Check the path (and its spelling).")
        out.append(p)
    return out


# -- building the gallery ------------------------------------------------------------------------------------------


def index(paths: Sequence[str | Path], config: Config, *, progress: bool = False,
          detector: FaceDetector | None = None, extractor: FaceExtractor | None = None,
          on_wait: Callable[[str], None] | None = None) -> IndexReport:
    """Add every photo under `paths` (folders, recursively, or single photos) to the gallery.

    Photos already indexed (same bytes, under any path) are not read again; a photo that cannot be read is
    recorded as failed and the run goes on. With `progress`, a progress bar is drawn on stderr. Runs on one
    home wait for each other (`on_wait` is told when this one waits), so two never write it at once. With
    `config.workers` above 1, photos are decoded, detected and embedded in that many worker processes
    (`indexer.workers`), and with `config.engine` "ray" by Ray actors (`indexer.ray_engine`); the results
    are written here either way. A path that does not exist is reported in `failed` (and `missing`), and the
    others are indexed.
    """
    paths = _some_existing(paths)  # before the home is opened: with nothing to index, none is created
    extractor = extractor or load_extractor(config)
    with ExitStack() as stack:
        gallery = stack.enter_context(_gallery(config, extractor.info, create=True, writes=True, on_wait=on_wait))
        pipeline = _pipeline(config, detector, extractor)
        pipeline.pool = _worker_pool(config, pipeline, stack)
        return index_paths(gallery, pipeline, paths, progress=progress,
                           on_step=_tracer(config.trace_path, config.trace_hold))


def _worker_pool(config: Config, pipeline: Pipeline, stack: ExitStack):
    """The processes or Ray actors that `index` spreads photos over (closed with `stack`), or None to work in
    this process."""
    from indexer.workers import ModelSettings, WorkerPool

    settings = ModelSettings(str(config.model_path), config.max_side, config.min_face_px, config.min_score,
                             pipeline.max_batch_pixels, str(config.graphs_dir) if config.graphs_dir else None)
    if config.engine == "ray":
        from indexer.ray_engine import RayPool

        try:
            return stack.enter_context(RayPool(settings, config.workers, config.ray_address))
        except Exception as e:  # Ray missing, or no cluster at the address
            raise EngineUnavailable(f"cannot start the Ray engine ({type(e).__name__}: {e}).\n"
                                    "Install it (pip install 'facesearch[ray]') and check --address, or index "
                                    "with the local engine (--engine local).") from None
    if config.engine != "local":
        raise EngineUnavailable(f"no engine called {config.engine!r}: use local or ray")
    if (config.workers or 1) > 1:
        return stack.enter_context(WorkerPool(settings, config.workers))
    return None


TRACE_HOLD_S = 30.0  # how long a traced run pauses at the held step; a test kills it meanwhile


def _tracer(path: Path | None, hold: str | None = None) -> Callable[[str], None] | None:
    """For tests (FACESEARCH_TRACE): a function appending each step to `path`, one line each, written at once
    so that a process watching the file sees it before the next step starts. After a step starting with
    `hold` (FACESEARCH_TRACE_HOLD) it pauses for TRACE_HOLD_S, so that a kill aimed at a step that takes
    microseconds (between writing the index file and renaming it) lands right there."""
    if path is None:
        return None

    def trace(step: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {step}\n")
        if hold and step.startswith(hold):
            time.sleep(TRACE_HOLD_S)

    return trace


def reindex(config: Config, *, progress: bool = False, extractor: FaceExtractor | None = None,
            on_wait: Callable[[str], None] | None = None) -> ReembedReport:
    """Give every stored face (gallery and enrolled) a vector of the current extractor, after a model change.

    Faces are aligned from their stored landmarks, so nothing is detected again; photos that moved, changed
    or cannot be read are reported and keep their old vectors (index their new folder to pick them up).
    """
    _require_database(config)
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait) as gallery:
        # the detector is never called (faces are aligned from stored landmarks), so it never loads
        return reembed_stale(gallery, _pipeline(config, None, extractor), progress=progress)


def check_name(name: str) -> str:
    """The name, stripped; InvalidName when it is empty, reserved, or holds control characters."""
    clean = name.strip()
    if not clean:
        raise InvalidName("a person's name cannot be empty")
    if clean.lower() == UNKNOWN:
        raise InvalidName(f"'{UNKNOWN}' is what facesearch calls a face it cannot name; choose another name")
    if any(unicodedata.category(c).startswith("C") for c in clean):
        raise InvalidName(f"{clean!r}: a name cannot hold control characters such as tabs or newlines")
    if len(clean) > 200:
        raise InvalidName(f"{clean[:40]}...: a name can be at most 200 characters long")
    return clean


def enroll(name: str, photos: Sequence[str | Path], config: Config, *, detector: FaceDetector | None = None,
           extractor: FaceExtractor | None = None, on_wait: Callable[[str], None] | None = None,
           force: bool = False) -> EnrollReport:
    """Enroll the main face (largest, nearest the centre) of each photo as a face of `name`, creating the person.

    Photos that cannot be read or show no face are reported in `failed` and skipped. Each new face is
    questioned (`indexer.library.enrolment_doubts`, at the verification threshold in force): one in doubt is
    reported in `refused` and not enrolled, or with `force` enrolled and reported in `doubted`. NoFaceFound
    when no photo gave a face (then nothing is written).
    """
    name = check_name(name)
    paths = _existing(photos)
    extractor = extractor or load_extractor(config)
    check = EnrolCheck(_threshold(config, extractor), config.k, force)
    with _gallery(config, extractor.info, create=True, writes=True, on_wait=on_wait) as gallery:
        report = enroll_photos(gallery, _pipeline(config, detector, extractor), name, paths, check)
    if not report.added and not report.skipped and not report.refused:
        reasons = "\n".join(f"  {p}: {r}" for p, r in report.failed)
        raise NoFaceFound(f"no face to enroll {name} from:\n{reasons}\n"
                          "Use photos where the face is at least 20 pixels wide and turned to the camera.")
    return report


def enroll_folders(root: str | Path, config: Config, *, detector: FaceDetector | None = None,
                   extractor: FaceExtractor | None = None, on_wait: Callable[[str], None] | None = None,
                   progress: bool = False, force: bool = False) -> list[EnrollReport]:
    """Enroll one person per subfolder of `root` (the subfolder's name is the person's name) from the photos
    inside it. A person for whom no photo gave a face is reported with only failures; nothing is written.
    Photos of consecutive people are detected and embedded together (see `enroll_people`), so a folder of
    thousands of people with a photo or two each goes as fast as indexing. With `progress`, a bar counts
    photos on stderr when it is a terminal. New faces are questioned as `enroll` questions them."""
    (root,) = _existing([root])
    if not root.is_dir():
        raise PhotoNotFound(f"{root}: not a folder. --folders wants a folder with one subfolder per person.")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise PhotoNotFound(f"{root}: no subfolders. Put each person's photos in a subfolder named after them.")
    people: list[tuple[str, list[Path]]] = []
    empty: dict[int, EnrollReport] = {}  # by position among the folders
    for n, folder in enumerate(folders):
        name = check_name(folder.name)
        photos = list(scan([folder]).photos)
        if photos:
            people.append((name, photos))
        else:
            empty[n] = EnrollReport(name, (), (), ((str(folder), "no photos in this folder"),))
    extractor = extractor or load_extractor(config)
    pipeline = _pipeline(config, detector, extractor)
    check = EnrolCheck(_threshold(config, extractor), config.k, force)
    with _gallery(config, extractor.info, create=True, writes=True, on_wait=on_wait) as gallery:
        enrolled = iter(enroll_people(gallery, pipeline, people, progress=progress, check=check))
    return [empty[n] if n in empty else next(enrolled) for n in range(len(folders))]


# -- answering -----------------------------------------------------------------------------------------------------


def who(photos: Sequence[str | Path], config: Config, *, detector: FaceDetector | None = None,
        extractor: FaceExtractor | None = None) -> list[PhotoAnswer]:
    """Name every face of each photo: the person nearest to it when nearer than the threshold, else UNKNOWN.

    A person's reference faces are their enrolled faces and the gallery faces given to them. When a photo is
    in the gallery, each face is matched to its stored face (`face_id`), and corrections made to that face are
    kept: it is never named after a person it was rejected for. A photo that cannot be read, or a path that
    does not exist, gets an answer with `error` set; the others are still answered."""
    given = _some_existing(photos)
    paths = [p for p in given if p.exists()]
    _require_database(config)
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False) as gallery:
        person_of = gallery.person_faces()
        if not person_of:
            _no_people(gallery, config)
        threshold = _naming_threshold(config, extractor, gallery, person_of).threshold
        pipeline = _pipeline(config, detector, extractor)
        answers: list[PhotoAnswer] = [PhotoAnswer(p, error="no such file or folder") for p in given
                                      if not p.exists()]
        for first in range(0, len(paths), config.batch_size):
            chunk = paths[first:first + config.batch_size]
            images, readable, hashes = [], [], []
            for p in chunk:
                try:
                    data = p.read_bytes()  # read once: decoded, and hashed to find its stored faces if indexed
                except OSError:
                    data = None  # read_image names the problem
                try:
                    images.append(read_image(p, data=data))
                except ImageError as e:
                    answers.append(PhotoAnswer(p, error=reason_of(e, p)))
                    continue
                readable.append(p)
                hashes.append(hashlib.sha256(data).hexdigest() if data is not None else "")
            stored = gallery.stored_boxes(hashes)
            for p, found, boxes in zip(readable, pipeline.faces_in(images), stored):
                if isinstance(found, str):
                    answers.append(PhotoAnswer(p, error=found))
                    continue
                faces = []
                if found:
                    face_ids = [stored_face_id(ef.face.box, boxes) for ef in found]
                    matches = match_people(gallery, np.stack([ef.vector for ef in found]), threshold, config.k,
                                           face_ids, person_of)
                    for ef, m, face_id in zip(found, matches, face_ids):
                        faces.append(FaceAnswer(ef.face.box, m.name or UNKNOWN, m.distance, m.nearest,
                                                float(ef.face.score), face_id))
                answers.append(PhotoAnswer(p, tuple(faces)))
    order = {p: n for n, p in enumerate(given)}
    return sorted(answers, key=lambda a: order[a.photo])


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

    paths = _existing([photo_a, photo_b])
    images = []
    for p in paths:
        try:
            images.append(read_image(p))
        except ImageError as e:
            raise PhotoUnreadable(f"{e}. Check that it is a photo (jpg, png, webp, bmp, tiff or gif).") from None
    extractor = extractor or load_extractor(config)
    pipeline = _pipeline(config, detector, extractor)
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
    threshold, far, _ = threshold_in_use(config, extractor)
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


def search(name: str, config: Config, *, extractor: FaceExtractor | None = None) -> list[Sighting]:
    """Every gallery photo where `name` appears (a face the naming rule gives `name`: given to them, or nearer
    than the threshold to one of their reference faces and to no one else's), nearest first, one entry per
    photo."""
    _require_database(config)
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False) as gallery:
        if name not in gallery.person_names():
            raise _unknown_person(gallery, name)
        if gallery.counts().gallery_faces == 0:
            raise NothingIndexed(f"no gallery photo is indexed in {config.home} yet, so there is nowhere to look "
                                 f"for {name}. Index photos first: facesearch index FOLDER")
        if len(gallery.vectors_of(name)[0]) == 0:
            raise ModelMismatch(f"{name}'s faces were embedded by another extractor than {extractor.version}.\n"
                                "Run: facesearch reindex")
        return _sightings(gallery, name, _naming_threshold(config, extractor, gallery).threshold, config.k)


def people(config: Config, *, extractor: FaceExtractor | None = None) -> list[PersonSummary]:
    """Everyone enrolled, by name, with their enrolled faces and the gallery photos they are found in."""
    if not _has_database(config):
        return []
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False) as gallery:
        person_of = gallery.person_faces()
        threshold = _naming_threshold(config, extractor, gallery, person_of).threshold
        return [PersonSummary(p.name, p.enrolled_faces,
                              len(_sightings(gallery, p.name, threshold, config.k, person_of)), p.given_faces)
                for p in gallery.people()]


def person(name: str, config: Config, *, extractor: FaceExtractor | None = None) -> PersonSummary:
    """One enrolled person with their count of enrolled faces (photos not counted: 0); UnknownPerson if none."""
    _require_database(config)
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False) as gallery:
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
    _require_database(config)
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait) as gallery:
        removed = gallery.forget(name)
        if removed is None:
            raise _unknown_person(gallery, name)
        return Forgotten(name, removed[0], removed[1], gallery.index.count, gallery.vacuum_problem)


def status(config: Config, *, extractor: FaceExtractor | None = None) -> Status:
    """Counts of photos, failures, faces and people, the model in use and the index; works on an empty home."""
    if not _has_database(config):
        empty = f"{config.home} holds no database yet: index or enroll to start one."
        try:
            extractor = extractor or load_extractor(config)
        except ModelNotFound as e:
            return Status(config.home, config.db_shown, None, None, None, None, None, Counts(0, 0, 0, 0, 0, 0, 0),
                          (), note=f"{empty}\n{e}")
        threshold, far, _ = threshold_in_use(config, extractor)
        naming = open_set_threshold(config, extractor, 0, 0)
        return Status(config.home, config.db_shown, extractor.version, threshold, far, None, None,
                      Counts(0, 0, 0, 0, 0, 0, 0), (), empty, naming.threshold, naming.describe())
    try:
        extractor = extractor or load_extractor(config)
    except ModelNotFound as e:
        try:
            engine = connect(config.db_url)
            try:
                with session_factory(engine)() as s:
                    counts = count_rows(s, None)
            finally:
                engine.dispose()
        except SQLAlchemyError as db_error:
            _raise_if_damaged(config, db_error)
            raise DatabaseUnavailable(f"cannot read the database {config.db_shown}: "
                                      f"{getattr(db_error, 'orig', None) or db_error}") from None
        return Status(config.home, config.db_shown, None, None, None, None, None, counts, (), note=str(e))
    with _gallery(config, extractor.info, create=False) as gallery:
        counts = gallery.counts()
        note = None
        if counts.stale_faces:
            note = (f"{counts.stale_faces} faces hold vectors of another extractor and are not searched.\n"
                    "Run: facesearch reindex")
        threshold, far, _ = threshold_in_use(config, extractor)
        naming = _naming_threshold(config, extractor, gallery)
        index_size = gallery.index.count
        if gallery.rebuilt_because:
            note = gallery.rebuilt_because + ("\n" + note if note else "")
        return Status(config.home, config.db_shown, extractor.version, threshold,
                      far, gallery.index_type, index_size, counts,
                      tuple(gallery.failures()), note, naming.threshold, naming.describe())


@dataclass(frozen=True)
class Exported:
    """What `export` wrote."""

    paths: tuple[Path, ...]
    people: int
    photos: int
    faces: int
    named_by_match: int  # gallery faces named after the enrolled person nearest to them, under the threshold


EXPORT_FORMATS = ("csv", "json")


def export(out_dir: str | Path, config: Config, *, formats: Sequence[str] = EXPORT_FORMATS,
           extractor: FaceExtractor | None = None) -> Exported:
    """Write every person, photo and face of the home into `out_dir` as CSV files and/or one JSON document
    (`facesearch.export.write_export` lists the columns).

    A face's name is its person's when it has one (an enrolled face, or a gallery face assigned to someone);
    otherwise, for a gallery face, the name `who` would give it: the enrolled person nearest to it when nearer
    than the threshold (`name_source` says which, `distance` how near). Faces of another extractor than the
    current one get no name by match (run `facesearch reindex` first)."""
    from db import FaceRow, PersonRow, PhotoRow
    from facesearch.export import write_export
    from indexer.vectors import from_bytes
    from sqlalchemy import select

    unknown = set(formats) - set(EXPORT_FORMATS)
    if unknown or not formats:
        raise BadOutputPath(f"export formats are csv and json, not {', '.join(sorted(unknown)) or 'none'}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadOutputPath(f"{out}: exists and is not a folder; export writes several files into a folder")
    _require_database(config)
    extractor = extractor or load_extractor(config)
    version = extractor.version
    with _gallery(config, extractor.info, create=False) as gallery:
        naming = _naming_threshold(config, extractor, gallery)
        threshold = naming.threshold
        with gallery.session() as s:
            names = dict(s.execute(select(PersonRow.id, PersonRow.name).order_by(PersonRow.name)).all())
            photos = [dict(photo_id=p.id, path=p.path, sha256=p.sha256, width=p.width, height=p.height,
                           status=p.status, error=p.error)
                      for p in s.scalars(select(PhotoRow).order_by(PhotoRow.id))]
            rows = s.execute(select(FaceRow.id, FaceRow.photo_id, PhotoRow.path, FaceRow.x0, FaceRow.y0, FaceRow.x1,
                                    FaceRow.y1, FaceRow.landmarks, FaceRow.score, FaceRow.kind, FaceRow.person_id,
                                    FaceRow.model_version, FaceRow.vector)
                             .join(PhotoRow, PhotoRow.id == FaceRow.photo_id).order_by(FaceRow.id)).all()
        faces, to_match = [], []
        for r in rows:
            face = dict(face_id=r.id, photo_id=r.photo_id, path=r.path, x0=r.x0, y0=r.y0, x1=r.x1, y1=r.y1,
                        landmarks=r.landmarks, score=r.score, kind=r.kind, name=names.get(r.person_id),
                        name_source=None, distance=None, model_version=r.model_version)
            if face["name"] is not None:
                face["name_source"] = "enrolled" if r.kind != INDEXED_FACE else "assigned"
            elif r.model_version == version:
                to_match.append((len(faces), from_bytes(r.vector, extractor.info.dim)))
            faces.append(face)
        matched = 0
        if to_match:
            ids = [faces[slot]["face_id"] for slot, _ in to_match]
            found = match_people(gallery, np.stack([v for _, v in to_match]), threshold, config.k, ids)
            for (slot, _), m in zip(to_match, found):
                if m.name is not None:
                    faces[slot].update(name=m.name, name_source="match", distance=m.distance)
                    matched += 1
    per_photo = Counter(f["photo_id"] for f in faces)
    for photo in photos:
        photo["faces"] = per_photo[photo["photo_id"]]
    named = Counter(f["name"] for f in faces if f["kind"] == INDEXED_FACE and f["name"] is not None)
    enrolled = Counter(f["name"] for f in faces if f["kind"] != INDEXED_FACE and f["name"] is not None)
    people_rows = [dict(person_id=pid, name=name, enrolled_faces=enrolled.get(name, 0),
                        gallery_faces_named=named.get(name, 0)) for pid, name in names.items()]
    about = {"home": str(config.home), "model_version": version, "threshold": threshold,
             "threshold_means": naming.describe(),
             "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "distance": "cosine distance 1 - a.b"}
    paths = write_export(out, people_rows, photos, faces, about, formats)
    return Exported(tuple(paths), len(people_rows), len(photos), len(faces), matched)


@dataclass(frozen=True)
class Checked:
    """What `check` found, and with `repair`, the size of the index rebuilt from the database."""

    report: CheckReport
    repaired_size: int | None = None  # vectors in the rebuilt index; None when not repaired
    exposed: tuple[tuple[Path, int], ...] = ()  # the home or its files open to other users (path, mode)
    tightened: tuple[tuple[Path, int], ...] = ()  # those `repair` made private, with their modes before


def check(config: Config, *, repair: bool = False, files: bool = True,
          extractor: FaceExtractor | None = None, on_wait: Callable[[str], None] | None = None) -> Checked:
    """Compare the FAISS index and the photo files with the database (the truth).

    Reports face vectors missing from the index or extra in it, a missing or damaged index file, faces
    with vectors of another model, and photos whose file is gone or changed (size, then sha256 when the
    modification time is later than the indexing). With `repair`, the index is rebuilt from the database
    afterwards (photos and stale faces are the user's to re-index: `index`, `reindex`). It waits for a run
    writing to the home to finish, so that run's half-done work is not reported as drift.
    """
    _require_database(config)
    extractor = extractor or load_extractor(config)
    with _gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait) as gallery:
        report = check_gallery(gallery, files=files)
        size = repair_index(gallery) if repair else None
    exposed = loose(config.home)
    tightened = tuple(tighten(config.home)) if repair else ()
    return Checked(report, size, tuple(exposed), tightened)


# -- drawing -------------------------------------------------------------------------------------------------------


def label_place(box: tuple[int, int, int, int], label_w: int, label_h: int,
                size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a face's label goes (x, y, width, height) in a photo of `size` (w, h): above the box when there is
    room, else below it, else inside its top; moved left, and cut to the photo's width, so that it stays in
    the photo."""
    x0, y0, x1, y1 = box
    w, h = size
    label_w, label_h = min(label_w, w - 1), min(label_h, h - 1)
    if y0 - label_h >= 0:
        y = y0 - label_h
    elif y1 + label_h <= h - 1:
        y = y1
    else:
        y = max(0, min(y0, h - 1 - label_h))
    x = max(0, min(x0, w - 1 - label_w))
    return x, y, label_w, label_h


def encoded(image, suffix: str) -> bytes:
    """A PIL image as the bytes of the format its file name's suffix names (ValueError for an unknown one)."""
    import io

    from PIL import Image

    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise ValueError(f"unknown file extension: {suffix or '(none)'}")
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def annotate(answers: Sequence[PhotoAnswer], out: str | Path) -> list[Path]:
    """Draw each answered photo with its boxes and names; returns the files written.

    For one photo `out` is the file to write (its suffix chooses the format) unless it is an existing folder;
    for several it is a folder (created), where each photo keeps its name.
    """
    from PIL import Image, ImageDraw, ImageFont

    out = Path(out).expanduser()
    answered = [a for a in answers if a.error is None]
    if len(answers) > 1 and not out.is_dir() and is_photo(out):
        raise BadOutputPath(f"{out}: a photo's name, but {len(answers)} photos were asked about: --annotate "
                            "wants a folder for several photos (it is created)")
    if len(answers) == 1 and not out.is_dir():
        if not is_photo(out):
            raise BadOutputPath(f"{out}: give the annotated photo a photo suffix "
                                f"({', '.join(sorted(PHOTO_SUFFIXES))})")
        targets = [out] if answered else []
    else:
        if out.exists() and not out.is_dir():
            raise BadOutputPath(f"{out}: a file; with several photos --annotate wants a folder")
        used: set[str] = set()
        targets = []
        for a in answered:
            name = a.photo.name
            n = 1
            while name in used:
                name = f"{a.photo.stem}-{n}{a.photo.suffix}"
                n += 1
            used.add(name)
            targets.append(out / name)
    written = []
    for a, target in zip(answered, targets):
        image = Image.fromarray(read_image(a.photo))
        draw = ImageDraw.Draw(image)
        side = max(image.size)
        width = max(2, side // 250)
        for face in a.faces:
            colour = (40, 200, 60) if face.name != UNKNOWN else (230, 60, 40)
            x0, y0, x1, y1 = face.box.as_list()
            draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
            label = face.name if face.distance is None else f"{face.name} {face.distance:.2f}"
            # the largest font (up to a 45th of the photo's side) whose label fits across the photo
            for size in range(max(12, side // 45), 5, -1):
                font = ImageFont.load_default(size=size)
                left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
                if right - left + 2 * width <= image.size[0]:
                    break
            lx, ly, lw, lh = label_place((x0, y0, x1, y1), right - left + 2 * width, bottom - top + 2 * width,
                                         image.size)
            draw.rectangle([lx, ly, lx + lw, ly + lh], fill=colour)
            draw.text((lx + width - left, ly + width - top), label, fill=(255, 255, 255), font=font)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, encoded(image, target.suffix))
        except (OSError, ValueError) as e:
            raise BadOutputPath(f"{target}: cannot write the annotated photo ({e})") from None
        written.append(target)
    return written
