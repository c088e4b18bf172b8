"""Building the gallery: `index` folders, `reindex` stored faces with a new extractor, `enroll` people,
and `check` the index and the photo files against the database.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from facesearch import home, thresholds
from facesearch.answers import UNKNOWN
from facesearch.config import Config
from facesearch.errors import EngineUnavailable, InvalidName, NoFaceFound, PhotoNotFound
from indexer import (
    CheckReport, EnrolCheck, EnrollReport, IndexReport, Pipeline, ReembedReport, check_gallery, enroll_photos,
    index_paths, reembed_stale, repair_index, scan,
)
from indexer.pipeline import FaceDetector, FaceExtractor, enroll_people
from indexer.private import loose, tighten


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
    paths = home.some_existing(paths)  # before the home is opened: with nothing to index, none is created
    extractor = extractor or home.load_extractor(config)
    with ExitStack() as stack:
        gallery = stack.enter_context(home.gallery(config, extractor.info, create=True, writes=True, on_wait=on_wait))
        pipeline = home.pipeline(config, detector, extractor)
        pipeline.pool = _worker_pool(config, pipeline, stack)
        return index_paths(gallery, pipeline, paths, progress=progress)


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


def reindex(config: Config, *, progress: bool = False, extractor: FaceExtractor | None = None,
            on_wait: Callable[[str], None] | None = None) -> ReembedReport:
    """Give every stored face (gallery and enrolled) a vector of the current extractor, after a model change.

    Faces are aligned from their stored landmarks, so nothing is detected again; photos that moved, changed
    or cannot be read are reported and keep their old vectors (index their new folder to pick them up).
    """
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait) as gallery:
        # the detector is never called (faces are aligned from stored landmarks), so it never loads
        return reembed_stale(gallery, home.pipeline(config, None, extractor), progress=progress)


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
    paths = home.existing(photos)
    extractor = extractor or home.load_extractor(config)
    check = EnrolCheck(thresholds.threshold(config, extractor), config.k, force)
    with home.gallery(config, extractor.info, create=True, writes=True, on_wait=on_wait) as gallery:
        report = enroll_photos(gallery, home.pipeline(config, detector, extractor), name, paths, check)
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
    (root,) = home.existing([root])
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
    extractor = extractor or home.load_extractor(config)
    pipeline = home.pipeline(config, detector, extractor)
    check = EnrolCheck(thresholds.threshold(config, extractor), config.k, force)
    with home.gallery(config, extractor.info, create=True, writes=True, on_wait=on_wait) as gallery:
        enrolled = iter(enroll_people(gallery, pipeline, people, progress=progress, check=check))
    return [empty[n] if n in empty else next(enrolled) for n in range(len(folders))]


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
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait,
                      warn_loose=False) as gallery:  # reported below, as what check found
        report = check_gallery(gallery, files=files)
        size = repair_index(gallery) if repair else None
    tightened = tuple(tighten(config.home)) if repair else ()
    exposed = tightened if repair else tuple(loose(config.home))  # tighten changes exactly what loose finds
    return Checked(report, size, exposed, tightened)
