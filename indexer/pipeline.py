"""Folders to gallery: scan, read, detect, align and embed a batch of photos at a time, and store them.

The detector and extractor are passed in (anything with `detect(images)`, and `embed(chips)` plus `info`),
so the storage logic can be exercised with stand-ins and the real models load only where they are needed.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from db import ENROLLED, FAILED
from indexer.gallery import BatchWrite, Gallery
from indexer.library import enrolment_doubts
from indexer.photos import Photo, decode_in_parts, decoded, in_groups, read_photo
from indexer.scan import scan
from models.align import align
from models.detect import MAIN_FACE_MIN_SCORE, main_face
from models.extractor import ModelInfo
from models.faces import Face

if TYPE_CHECKING:
    from indexer.workers import WorkerPool

DEFAULT_BATCH_SIZE = 16  # photos written together (one transaction), read and detected together when small
# A batch of large photos is read, detected and embedded in parts of at most this many decoded pixels (a 12 MP
# photo decodes to 36 MB, so 4 of them: one MTCNN call), whatever the batch size. `index` decodes the next
# part while it detects the current one, so two parts are held at once.
DEFAULT_MAX_BATCH_PIXELS = 50_000_000
# A batch's files are read once and their bytes held until decoded (`indexer/photos.py`): a batch also ends
# before its files hold more than this many bytes, so that a large --batch-size of large photos stays bounded.
MAX_BATCH_BYTES = 256_000_000


class FaceDetector(Protocol):
    min_score: float

    def detect(self, images: list[np.ndarray], min_score: float | None = None) -> list[list[Face]]: ...


class FaceExtractor(Protocol):
    info: ModelInfo

    @property
    def version(self) -> str: ...

    def embed(self, chips: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbeddedFace:
    """A detected face with its vector under the current extractor (`Pipeline.embed`)."""

    face: Face
    vector: np.ndarray  # (dim,) float32, unit length


@dataclass(frozen=True)
class IndexReport:
    """What one `index_paths` run did."""

    new: int  # photos added to the gallery
    already: int  # photos already in the gallery (also copies of one photo under two paths)
    moved: int  # photos already in the gallery found under a new path: the path was updated
    reembedded: int  # photos whose faces got vectors of the current extractor, without detecting again
    failed: tuple[tuple[str, str], ...]  # (path, reason) of the photos that could not be read
    faces: int  # faces added to the gallery
    skipped: int  # files in the folders that are not photos
    seconds: float
    skipped_files: tuple[str, ...] = ()  # those files
    photos_found: int = 0  # photos the scan found under the paths given
    missing: tuple[str, ...] = ()  # paths given that do not exist (also listed in `failed`)


@dataclass(frozen=True)
class ReembedReport:
    """What one `reembed_stale` run did."""

    photos: int  # photos whose faces got vectors of the current extractor
    faces: int
    failed: tuple[tuple[str, str], ...]  # (path, reason): gone, changed, or unreadable; their faces wait
    seconds: float


@dataclass(frozen=True)
class EnrollReport:
    """What enrolling one person did."""

    name: str
    added: tuple[str, ...]  # photos whose face was enrolled
    skipped: tuple[tuple[str, str], ...]  # (path, reason): already enrolled
    failed: tuple[tuple[str, str], ...]  # (path, reason): unreadable, or no face found
    refused: tuple[tuple[str, str], ...] = ()  # (path, why): a face in doubt (`EnrolCheck`), not enrolled
    doubted: tuple[tuple[str, str], ...] = ()  # (path, why): a face in doubt, enrolled all the same (forced)


@dataclass(frozen=True)
class EnrolCheck:
    """How `enroll` questions a new face (`indexer.library.enrolment_doubts`): against the verification
    `threshold`, among each person's `k` nearest reference faces; with `force`, a face in doubt is enrolled
    and reported, else it is refused."""

    threshold: float
    k: int = 50
    force: bool = False


class Pipeline:
    """Photos to faces with vectors, with one detector and one extractor loaded once."""

    def __init__(self, detector: FaceDetector, extractor: FaceExtractor, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS, pool: WorkerPool | None = None):
        self.detector = detector
        self.extractor = extractor
        self.batch_size = batch_size
        self.max_batch_pixels = max_batch_pixels
        self.pool = pool  # when given, `index_paths` decodes, detects and embeds new photos in its processes

    def load_in_background(self) -> threading.Thread:
        """Start loading the detector's and the extractor's models (those that have a `load` method) in a
        thread, so that the first photos are read meanwhile; join the thread before detecting. A failure is
        left for the first real call to raise."""
        def load() -> None:
            for model in (self.detector, self.extractor):
                try:
                    getattr(model, "load", lambda: None)()
                except Exception:
                    return

        thread = threading.Thread(target=load, name="facesearch-load", daemon=True)
        thread.start()
        return thread

    def detect(self, images: list[np.ndarray], min_score: float | None = None) -> list[list[Face] | str]:
        """The faces of each image (scoring at least `min_score`, default the detector's own), or for an image
        the detector fails on, the reason as a string."""
        if not images:
            return []
        options = {} if min_score is None else {"min_score": min_score}
        try:
            return list(self.detector.detect(images, **options))
        except Exception:  # one odd photo should not sink its batch: find it by detecting one at a time
            out: list[list[Face] | str] = []
            for image in images:
                try:
                    out.append(self.detector.detect([image], **options)[0])
                except Exception as e:
                    out.append(f"face detection failed ({type(e).__name__}: {e})")
            return out

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[EmbeddedFace]]:
        """Align each face out of its image and embed all of them in one call, per image."""
        chips = [align(image, face, self.extractor.info.chip) for image, fs in zip(images, faces) for face in fs]
        if not chips:
            return [[] for _ in images]
        vectors = self.extractor.embed(np.stack(chips))
        out, i = [], 0
        for fs in faces:
            out.append([EmbeddedFace(face, vectors[i + j]) for j, face in enumerate(fs)])
            i += len(fs)
        return out

    def faces_in(self, images: list[np.ndarray]) -> list[list[EmbeddedFace] | str]:
        """Every face of each image with its vector, or the reason detection failed."""
        detected = self.detect(images)
        ok = [i for i, d in enumerate(detected) if not isinstance(d, str)]
        embedded = self.embed([images[i] for i in ok], [detected[i] for i in ok])
        out: list[list[EmbeddedFace] | str] = list(detected)
        for i, e in zip(ok, embedded):
            out[i] = e
        return out

    def photo_faces(self, photos: list[Photo]) -> list[Photo]:
        """The photos with their faces and vectors, or why detection failed, their images let go; photos not
        decoded (an `error` already) come back as they are. This process runs it for `index` and `who`, and so
        do the worker processes and Ray actors (`indexer.workers`)."""
        found = iter(self.faces_in([ph.image for ph in photos if ph.image is not None]))
        out = []
        for ph in photos:
            if ph.image is None:
                out.append(ph)
                continue
            result = next(found)
            out.append(replace(ph, image=None, error=result) if isinstance(result, str)
                       else replace(ph, image=None, faces=tuple(result)))
        return out


def ahead(items: Iterator, holding: int = 2) -> Iterator:
    """What `items` yields, in order, each next item made in a background thread while the caller works on the
    one it was given. At most `holding` items exist at once: the caller's, and the ones made after it (the
    caller lets go of an item before asking for the next). Decoding (OpenCV, hashing) lets go of Python's
    lock, so it runs beside detection on the other core. An error raised by `items` reaches the caller there.
    """
    slots = threading.Semaphore(holding)
    made: queue.Queue = queue.Queue()
    stop = threading.Event()
    end = object()

    def make() -> None:
        try:
            while True:
                slots.acquire()
                if stop.is_set():
                    return
                try:
                    item = next(items)
                except StopIteration:
                    made.put((end, None))
                    return
                made.put((item, None))
        except BaseException as e:  # handed to the caller, raised there
            made.put((end, e))

    worker = threading.Thread(target=make, name="facesearch-decode", daemon=True)
    worker.start()
    try:
        while True:
            item, error = made.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
            del item
            slots.release()  # the caller is done with it
    finally:
        stop.set()
        slots.release()  # a producer waiting for a slot sees `stop` and ends


def batches(paths: Sequence[Path], size: int, max_bytes: int) -> Iterator[list[Path]]:
    """`paths` in consecutive batches of at most `size` photos whose files hold at most `max_bytes` bytes together
    (a larger file makes a batch of its own); a file whose size cannot be read counts as empty here, and its
    reading reports it."""
    return in_groups(paths, max_bytes, _file_size, size)


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def index_paths(gallery: Gallery, pipeline: Pipeline, paths: Sequence[Path], progress: bool = False,
                on_step: Callable[[str], None] | None = None) -> IndexReport:
    """Add the photos under `paths` (folders walked recursively, or single photos) to the gallery.

    A photo already in the database (same bytes) is not read again; found under a new path while its old
    path is gone, its path is updated. A photo that cannot be read is stored as failed with its reason and
    the run goes on. With `progress`, a bar is drawn on stderr when it is a terminal. Each batch is one
    transaction, so a run killed midway, rerun, finishes without duplicates.

    Each batch of `pipeline.batch_size` photos is one transaction; its photos are decoded, detected and embedded
    in parts of at most `pipeline.max_batch_pixels` decoded pixels, so memory stays bounded on large photos.

    `on_step`, when given, is told each step as it is done: `scanned N` (photos found), `detected N` (photos of
    a batch, or of a part of it, detected and embedded), `written N` (a batch's transaction committed, N faces),
    `saving`, the steps of the index and sidecar file writes (`temp-partial`, `temp-complete`, `replaced`: see
    `models.files.write_atomic`) and `saved`. Tests use it to stop a run at a chosen point.
    """
    step = on_step or (lambda _: None)
    start = time.monotonic()
    found = scan(list(paths))
    step(f"scanned {len(found.photos)}")
    new = already = moved = reembedded = faces = 0
    failed: list[tuple[str, str]] = [(str(p), "no such file or folder") for p in found.missing]
    failed += [(str(p), why) for p, why in found.unreadable]
    seen: set[str] = set()
    loading: threading.Thread | None = None
    bar = tqdm(total=len(found.photos), unit="photo", desc="indexing", file=sys.stderr,
               disable=None if progress else True)  # None: drawn only when stderr is a terminal
    try:
        for batch_paths in batches(found.photos, pipeline.batch_size, MAX_BATCH_BYTES):
            # each file read once: hashed here, decoded below from the same bytes if it is new
            photos = [read_photo(p) for p in batch_paths]
            write = BatchWrite(photos=[ph for ph in photos if ph.error is not None])
            failed += [(ph.path, ph.error) for ph in write.photos]
            readable = [ph for ph in photos if ph.error is None]
            known = gallery.known_photos(ph.sha256 for ph in readable)
            to_read: list[Photo] = []
            stale: list[tuple[Photo, int]] = []
            for ph in readable:
                if ph.sha256 in seen:
                    already += 1  # a second copy of a photo met earlier in this run
                    continue
                seen.add(ph.sha256)
                k = known.get(ph.sha256)
                if k is None or k.status in (ENROLLED, FAILED):
                    to_read.append(ph)
                    continue
                if k.path != ph.path and not Path(k.path).exists():
                    write.moves.append((k.id, ph.path))
                    moved += 1
                else:
                    already += 1
                if k.stale_faces:
                    stale.append((ph, k.id))  # its bytes kept: re-embedded below without reading it again
            del photos, readable  # the bytes of photos neither new nor to re-embed go now

            if pipeline.pool is not None:
                new += _detect_in_workers(pipeline.pool, to_read, write, failed, step)
            elif to_read:
                loading = loading or pipeline.load_in_background()
                for part in ahead(decode_in_parts(to_read, pipeline.max_batch_pixels)):
                    loading.join()  # the models: loaded meanwhile
                    results = pipeline.photo_faces(part)
                    del part  # let go of its images before the next part is decoded
                    detected = sum(ph.width is not None for ph in results)
                    if detected:
                        step(f"detected {detected}")
                    new += _record(results, write, failed)
            del to_read

            for ph, photo_id in stale:
                vectors = _reembed(gallery, pipeline, ph, photo_id)
                if isinstance(vectors, str):
                    continue  # unreadable now: its faces keep waiting, `status` counts them
                write.vectors.extend(vectors)
                reembedded += 1

            added = gallery.write(write)
            faces += added
            step(f"written {added}")
            bar.update(len(batch_paths))
    finally:
        bar.close()
        step("saving")
        gallery.save_index(step)
        step("saved")
    return IndexReport(new, already, moved, reembedded, tuple(failed), faces, found.skipped,
                       time.monotonic() - start, tuple(str(p) for p in found.skipped_files), len(found.photos),
                       tuple(str(p) for p in found.missing))


def _record(results: list[Photo], write: BatchWrite, failed: list[tuple[str, str]]) -> int:
    """Add these photos to `write` and those that failed to `failed`; returns how many were added with their
    faces."""
    write.photos.extend(results)
    failed.extend((ph.path, ph.error) for ph in results if ph.error is not None)
    return sum(ph.error is None for ph in results)


def _detect_in_workers(pool: WorkerPool, photos: list[Photo], write: BatchWrite, failed: list[tuple[str, str]],
                       step: Callable[[str], None]) -> int:
    """What `index_paths` does with a batch's new photos, done by the worker processes (sent with their bytes);
    returns photos added with their faces."""
    added = 0
    for chunk in pool.faces_of(photos):
        added += _record(chunk, write, failed)
        step(f"detected {len(chunk)}")
    return added


def _reembed(gallery: Gallery, pipeline: Pipeline, photo: Photo, photo_id: int,
             sha256: str | None = None) -> list[tuple[int, np.ndarray]] | str:
    """New vectors for the faces of a photo stored under another extractor, from their stored landmarks (no
    detection), or the reason they cannot be made; `photo` as `read_photo` read it, decoded here from those
    bytes. With `sha256`, they must be the bytes stored under that hash."""
    stored = gallery.stale_faces(photo_id)
    if not stored:
        return []
    if photo.error is not None:
        return f"{photo.error}; if it moved, index its new folder"
    if sha256 is not None and photo.sha256 != sha256:
        return "the file changed since it was indexed; index it again"
    photo = decoded(photo)
    if photo.error is not None:
        return photo.error
    embedded = pipeline.embed([photo.image], [[face for _, face in stored]])[0]
    return [(face_id, ef.vector) for (face_id, _), ef in zip(stored, embedded)]


def reembed_stale(gallery: Gallery, pipeline: Pipeline, progress: bool = False) -> ReembedReport:
    """Give every face stored under another extractor a vector of the current one, read from its photo at the
    stored path and aligned from the stored landmarks (nothing is detected again). One transaction per batch."""
    start = time.monotonic()
    stale = gallery.stale_photos()
    photos = faces = 0
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(stale), unit="photo", desc="re-embedding", file=sys.stderr,
               disable=None if progress else True)
    try:
        for first in range(0, len(stale), pipeline.batch_size):
            write = BatchWrite()
            for photo_id, path, sha256 in stale[first:first + pipeline.batch_size]:
                vectors = _reembed(gallery, pipeline, read_photo(path), photo_id, sha256)
                if isinstance(vectors, str):
                    failed.append((path, vectors))
                    continue
                write.vectors.extend(vectors)
                photos += 1
                faces += len(vectors)
            gallery.write(write)
            bar.update(min(pipeline.batch_size, len(stale) - first))
    finally:
        bar.close()
        gallery.save_index()
    return ReembedReport(photos, faces, tuple(failed), time.monotonic() - start)


def main_faces(pipeline: Pipeline, paths: Sequence[Path]) -> list[Photo | str]:
    """For each photo, read and decoded as `index` reads it, its main face (largest, nearest the centre; the
    likeliest face where none reaches the detector's score, `models.detect.MAIN_FACE_MIN_SCORE`) embedded, as
    the Photo with that one face, or the reason there is none. All photos are detected together and all chosen
    faces embedded in one call."""
    out: list[Photo | str] = []
    photos: list[tuple[int, Photo]] = []
    for p in paths:
        ph = decoded(read_photo(Path(p).absolute()))
        if ph.error is not None:
            out.append(ph.error)
            continue
        photos.append((len(out), ph))
        out.append("")  # filled below
    detected = pipeline.detect([ph.image for _, ph in photos], min_score=MAIN_FACE_MIN_SCORE)
    chosen: list[tuple[int, Photo, Face]] = []
    for (slot, ph), faces in zip(photos, detected):
        if isinstance(faces, str):
            out[slot] = faces
            continue
        face = main_face(faces, ph.width, ph.height, pipeline.detector.min_score)
        if face is None:
            out[slot] = "no face found"
            continue
        chosen.append((slot, ph, face))
    embedded = pipeline.embed([ph.image for _, ph, _ in chosen], [[face] for _, _, face in chosen])
    for (slot, ph, _), (ef,) in zip(chosen, embedded):
        out[slot] = replace(ph, image=None, faces=(ef,))
    return out


def enroll_photos(gallery: Gallery, pipeline: Pipeline, name: str, paths: Sequence[Path],
                  check: EnrolCheck | None = None) -> EnrollReport:
    """Enroll the main face (largest, nearest the centre) of each photo as a face of `name`.

    The person is created with the first face; when no photo gives a face, nothing is written. With `check`,
    each new face is questioned first (`EnrolCheck`).
    """
    return enroll_people(gallery, pipeline, [(name, paths)], check=check)[0]


def enroll_people(gallery: Gallery, pipeline: Pipeline, people: Sequence[tuple[str, Sequence[Path]]],
                  progress: bool = False, check: EnrolCheck | None = None) -> list[EnrollReport]:
    """`enroll_photos` for each (name, photos) of `people`, one report each, in order.

    The photos of consecutive people are detected and embedded together, `pipeline.batch_size` at a time (a
    call to MTCNN or the extractor costs far more than one more photo in it, and people often come with one or
    two photos). Each person is written in one transaction as soon as all their photos are done, so a killed
    run keeps every person it finished; the FAISS index is saved once, at the end (an index that missed its
    save is rebuilt from the database when next opened). With `progress`, a bar counts photos on stderr when
    it is a terminal.
    """
    queue = [(person, Path(p).absolute()) for person, (_, paths) in enumerate(people) for p in paths]
    left = [len(paths) for _, paths in people]
    outcomes: list[list[tuple[Path, Photo | str]]] = [[] for _ in people]
    reports: list[EnrollReport] = []

    def write_finished(upto: int) -> None:
        # people are queued in order, so everyone before `upto` with no photo left is complete
        while len(reports) < upto and left[len(reports)] == 0:
            reports.append(_enroll_one(gallery, people[len(reports)][0], outcomes[len(reports)], check))

    bar = tqdm(total=len(queue), unit="photo", desc="enrolling", file=sys.stderr,
               disable=None if progress else True)  # None: drawn only when stderr is a terminal
    try:
        write_finished(len(people))  # people without photos
        for first in range(0, len(queue), pipeline.batch_size):
            chunk = queue[first:first + pipeline.batch_size]
            for (person, path), outcome in zip(chunk, main_faces(pipeline, [p for _, p in chunk])):
                outcomes[person].append((path, outcome))
                left[person] -= 1
            write_finished(len(people))
            bar.update(len(chunk))
    finally:
        bar.close()
        gallery.save_index()
    return reports


def _enroll_one(gallery: Gallery, name: str, outcomes: list[tuple[Path, Photo | str]],
                check: EnrolCheck | None = None) -> EnrollReport:
    items = [o for _, o in outcomes if isinstance(o, Photo)]
    failed = tuple((str(p), o) for p, o in outcomes if isinstance(o, str))
    doubts: list[tuple[str, str]] = []
    if items and check is not None:
        why = enrolment_doubts(gallery, name, np.stack([i.faces[0].vector for i in items]), check.threshold, check.k)
        doubts = [(i.path, w) for i, w in zip(items, why) if w]
        if not check.force:
            items = [i for i, w in zip(items, why) if not w]
    refused = () if check is None or check.force else tuple(doubts)
    doubted = tuple(doubts) if check is not None and check.force else ()
    if not items:
        return EnrollReport(name, (), (), failed, refused, doubted)
    result = gallery.enroll(name, items)
    return EnrollReport(name, result.added, result.skipped, failed, refused, doubted)
