"""Bulk indexing on Ray: `facesearch index --engine ray [--address ADDRESS] [--workers N]`.

Ray actors, one CPU each, load the detector and the extractor once (the same `indexer.workers` code a local
worker process runs) and turn photos into faces with vectors. The machine running `facesearch index` still
scans, reads and hashes, decides what is new and writes every result through the same `Gallery`, one transaction per
batch, so the database and the index are exactly what the local engine writes (tests compare them) and a
killed run reruns the same way. Photos are sent to the actors as bytes, so the other machines of a cluster need
no access to the photo folders, only the facesearch package and its models installed.

Without `--address`, a Ray instance is started on this machine for the run and stopped after it; with one
(`auto`, or `ray://head:10001`), the run joins that cluster and leaves it running.
"""
from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence

from indexer.photos import Photo
from indexer.workers import ModelSettings, split_evenly


class _FacesActor:
    """One Ray actor: the models loaded once, then photos to faces (see `indexer.workers.faces_of_photos`)."""

    def __init__(self, settings: ModelSettings):
        from indexer.workers import start_worker

        start_worker(settings)

    def faces_of(self, photos: list[Photo]) -> list[Photo]:
        from indexer.workers import faces_of_photos

        return faces_of_photos(photos)


class RayPool:
    """`workers` Ray actors (default: one per CPU of the cluster); `faces_of` spreads photos over them."""

    def __init__(self, settings: ModelSettings, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise RuntimeError("the Ray engine needs Ray: pip install 'facesearch[ray]'") from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started and address not in (None, "auto"):
            _check_reachable(address)
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     configure_logging=False)
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(_FacesActor)
        self._actors = [actor.remote(settings) for _ in range(self.workers)]

    def faces_of(self, photos: Sequence[Photo]) -> Iterator[list[Photo]]:
        """The photos' results in their order, in chunks (one per actor), each chunk as soon as it is done. The
        photos travel with the bytes this machine read and hashed."""
        if not photos:
            return
        chunks = split_evenly(photos, len(self._actors))
        refs = [actor.faces_of.remote(chunk) for actor, chunk in zip(self._actors, chunks)]
        for ref in refs:
            yield self._ray.get(ref)

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._started:
            self._ray.shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ConnectionError naming the address when nothing answers there (Ray itself keeps retrying for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise ConnectionError(f"no Ray cluster answers at {address} ({e})") from None
