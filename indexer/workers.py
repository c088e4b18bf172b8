"""Decoding, detection and embedding in worker processes, for `facesearch index --workers N`.

Each worker is a spawned process that loads the detector and the extractor once and then turns lists of photos
(`indexer.photos.Photo`, sent with the bytes the main process read and hashed) into faces with vectors; the main
process still reads photos, decides what to detect and writes every result through the same `Gallery` (one
transaction per batch), so a killed run reruns exactly as with one process. A worker runs its networks on one
thread. On this project's 2-core machine two such workers were slower than one process using both cores
(docs/benchmarks.md, "What each change bought": 34 against 40 LFW photos/s), so the default stays one process;
the pool is for machines with more cores, and the Ray engine's actors run the same code
(`indexer/ray_engine.py`). Workers are spawned, never forked, so that no thread pool of the parent's is copied
half-held into them.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from indexer.photos import Photo, decode_in_parts


@dataclass(frozen=True)
class ModelSettings:
    """What a worker needs to load the same models as the main process."""

    model_path: str
    max_side: int
    min_face_px: int
    min_score: float
    max_batch_pixels: int
    graphs_dir: str | None = None  # where MTCNN's built graphs are kept (Config.graphs_dir)


_pipeline = None  # the worker's own Pipeline, built once by start_worker


def start_worker(settings: ModelSettings) -> None:
    global _pipeline
    from models import runtime
    from models.detect import Detector

    runtime.set_threads(1)
    from indexer.pipeline import Pipeline
    from models.extractor import Extractor

    detector = Detector(max_side=settings.max_side, min_face_px=settings.min_face_px, min_score=settings.min_score,
                        graph_cache=Path(settings.graphs_dir) if settings.graphs_dir else None)
    _pipeline = Pipeline(detector, Extractor(settings.model_path), max_batch_pixels=settings.max_batch_pixels)


def faces_of_photos(photos: list[Photo]) -> list[Photo]:
    """In a worker: decode the photos from their bytes (in parts of bounded pixels), detect, align and embed their
    faces; one result per photo, in order, without bytes or images."""
    out = []
    for part in decode_in_parts(photos, _pipeline.max_batch_pixels):
        out.extend(_pipeline.photo_faces(part))
    return out


def split_evenly(items: Sequence, parts: int) -> list[list]:
    """`items` in at most `parts` consecutive chunks of equal size (the last may be shorter)."""
    size = -(-len(items) // parts)
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


class WorkerPool:
    """`workers` spawned processes with the models loaded; `faces_of` spreads a list of photos over them."""

    def __init__(self, settings: ModelSettings, workers: int):
        import multiprocessing

        if workers < 2:
            raise ValueError("a worker pool needs at least 2 workers; with one, index in the process itself")
        self.workers = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=start_worker, initargs=(settings,))

    def faces_of(self, photos: Sequence[Photo]) -> Iterator[list[Photo]]:
        """The photos' results in their order, in chunks as the workers finish them (one chunk per worker)."""
        if not photos:
            return
        yield from self._pool.map(faces_of_photos, split_evenly(photos, self.workers))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
