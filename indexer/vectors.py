"""The FAISS vector index: exact inner-product search over unit vectors, keyed by face id.

Distance is the cosine distance `1 - a.b` everywhere, so an inner product `ip` from FAISS is the distance
`1 - ip`. The index is a cache of the database's vectors: it is saved beside a small JSON sidecar (model
version, index type, count, largest id) and rebuilt whenever the sidecar and the database disagree.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

INDEX_TYPE = "IDMap2,FlatIP"  # exact search; the factory string of the index built by `new_index`


@dataclass(frozen=True)
class Sidecar:
    """What a saved index holds, written as JSON beside it."""

    model_version: str
    index_type: str
    dim: int
    count: int  # vectors in the index
    max_id: int  # largest face id in the index, -1 when empty


def to_bytes(vector: np.ndarray) -> bytes:
    """A vector as raw little-endian float32 bytes, as the database stores it."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes, dim: int) -> np.ndarray:
    """The (dim,) float32 vector stored as `data`; ValueError when its length does not match `dim`."""
    if len(data) != 4 * dim:
        raise ValueError(f"stored vector has {len(data)} bytes, expected {4 * dim} for dimension {dim}")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def sidecar_path(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".json")


class VectorIndex:
    """Unit vectors under int64 ids; search answers cosine distances, smallest first."""

    def __init__(self, dim: int, index: faiss.Index | None = None):
        if index is None:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if index.d != dim:
            raise ValueError(f"index holds vectors of dimension {index.d}, expected {dim}")
        self.dim = dim
        self._index = index
        self._ids: set[int] = set(int(i) for i in faiss.vector_to_array(index.id_map)) if index.ntotal else set()

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self._ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n, dim) unit vectors under the n ids; an id already present is replaced."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = self._prepare(vectors)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids) == 0:
            return
        present = [i for i in ids.tolist() if i in self._ids]
        if present:
            self.remove(np.array(present))
        self._index.add_with_ids(vectors, ids)
        self._ids.update(ids.tolist())

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (those absent are ignored); returns how many were removed."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        self._ids.difference_update(ids.tolist())
        return removed

    def search(self, vectors: np.ndarray, k: int, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest ids of each query and their cosine distances, (n, k) each, nearest first.

        With `among`, only those ids are candidates. Missing neighbours have id -1 and distance inf.
        """
        vectors = self._prepare(vectors)
        params = None
        if among is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.ascontiguousarray(among, dtype=np.int64)))
        if self.count == 0 or k <= 0:
            n = len(vectors)
            return np.full((n, max(k, 0)), np.inf, np.float32), np.full((n, max(k, 0)), -1, np.int64)
        sims, ids = self._index.search(vectors, k, params=params)
        # an inner product may exceed 1 by rounding; a distance is never negative
        distances = np.where(ids >= 0, np.maximum(1.0 - sims, 0.0), np.inf).astype(np.float32)
        return distances, ids.astype(np.int64)

    def within(self, vectors: np.ndarray, max_distance: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query, every id at a cosine distance below `max_distance`: (ids, distances), nearest first."""
        vectors = self._prepare(vectors)
        if self.count == 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(len(vectors))]
        limits, sims, ids = self._index.range_search(vectors, 1.0 - max_distance)
        out = []
        for q in range(len(vectors)):
            lo, hi = limits[q], limits[q + 1]
            d = np.maximum(1.0 - sims[lo:hi], 0.0).astype(np.float32)
            order = np.argsort(d, kind="stable")
            out.append((ids[lo:hi][order].astype(np.int64), d[order]))
        return out

    def vector(self, face_id: int) -> np.ndarray:
        """The stored vector of one id (KeyError when absent)."""
        if face_id not in self._ids:
            raise KeyError(face_id)
        return self._index.reconstruct(int(face_id))

    def save(self, path: Path, model_version: str, on_step: Callable[[str], None] | None = None) -> Sidecar:
        """Write the index and its sidecar beside `path` and rename them into place (never half-written).

        Temporary files left behind by an earlier save that was killed are removed first. `on_step`, when
        given, is told the steps of each file's write (see `write_atomic`): tests stop a save there.
        """
        sidecar = Sidecar(model_version=model_version, index_type=INDEX_TYPE, dim=self.dim, count=self.count,
                          max_id=max(self._ids, default=-1))
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(path)
        remove_leftovers(sidecar_path(path))
        write_atomic(path, faiss.serialize_index(self._index).tobytes(), on_step)
        write_atomic(sidecar_path(path), json.dumps(asdict(sidecar), indent=2).encode(), on_step)
        return sidecar

    @classmethod
    def load(cls, path: Path) -> tuple[VectorIndex, Sidecar] | None:
        """The index saved at `path` with its sidecar, or None when either is missing, damaged or they disagree."""
        try:
            sidecar = Sidecar(**json.loads(sidecar_path(path).read_text()))
            index = faiss.read_index(str(path))
        except (OSError, ValueError, TypeError, RuntimeError):
            return None
        if index.ntotal != sidecar.count or index.d != sidecar.dim or sidecar.index_type != INDEX_TYPE:
            return None
        return cls(sidecar.dim, index), sidecar

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        # FAISS wants C-contiguous float32 rows
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of dimension {vectors.shape[1]}, the index holds {self.dim}")
        return vectors


def _temp_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def write_atomic(path: Path, data: bytes, on_step: Callable[[str], None] | None = None) -> None:
    """Write `data` to a temporary file beside `path`, sync it and rename it into place, so that `path` holds
    either its old bytes or all of the new ones, however the process ends.

    `on_step`, when given, is told `temp-partial NAME` once the temporary file holds the first half of the
    bytes (not yet synced), `temp-complete NAME` once it holds all of them, synced but not renamed, and
    `replaced NAME` after the rename; NAME is the name of `path`.
    """
    step = on_step or (lambda _: None)
    tmp = _temp_path(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            step(f"temp-partial {path.name}")
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        step(f"temp-complete {path.name}")
        os.replace(tmp, path)
        step(f"replaced {path.name}")
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files of `write_atomic` beside `path` whose process is gone (killed mid-save);
    returns them. Those of a running process are its save in progress and are left alone."""
    removed = []
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):-len(".tmp")]
        if not pid.isdigit() or _running(int(pid)):
            continue
        try:
            tmp.unlink()
        except FileNotFoundError:
            continue  # removed meanwhile by another process
        removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier process that had this pid; this one writes only in write_atomic
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True
