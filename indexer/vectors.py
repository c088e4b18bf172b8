"""The FAISS vector index: unit vectors keyed by face id, searched by cosine distance.

Distance is the cosine distance `1 - a.b` everywhere, so an inner product `ip` from FAISS is the distance
`1 - ip`. The index is a cache of the database's vectors: it is saved beside a small JSON sidecar (model
version, index type, count, largest id) and rebuilt whenever the sidecar and the database disagree.

The index type follows the gallery's size (`Scale.index_type`): exact search (`EXACT`) while it is small,
then an inverted file of 8-bit scalar-quantised codes (`IVF{lists},SQ8`, about a quarter of the memory).
The codes only choose a shortlist: it is re-ranked with the exact vectors, which the database holds (the
`stored` source given to `VectorIndex`), so every distance the index answers is exact whatever its type.
What an IVF index may miss is a neighbour in an inverted list it did not probe; `bench/faiss_scale.py`
measures how often. HNSW is measured there too but never built: FAISS cannot remove vectors from an HNSW
graph, and `forget` and re-embedding must.
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import faiss
import numpy as np

from models.files import remove_leftovers, write_atomic
from models.distance import cosine_distances, from_similarity

EXACT = "IDMap2,FlatIP"  # exact search; the FAISS factory string of a small gallery's index
_IVF = re.compile(r"IVF(\d+),SQ8")

StoredVectors = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Given face ids: those of them it holds, in the order asked, and their exact (n, dim) float32 vectors."""


@dataclass(frozen=True)
class IvfStep:
    """The IVF index of a gallery of fewer than `below` vectors: `lists` inverted lists, `nprobe` of them
    probed per query."""

    below: int
    lists: int
    nprobe: int


# Index type by gallery size, from the table `python bench/faiss_scale.py` prints (quoted with its machine and
# date in docs/scaling.md, "The index at gallery scale"); rerun it before changing these. The target: under 2 ms
# per query at recall@1 0.99 or more at 1M faces. Exact search costs time in proportion to the faces (2.8 ms
# per query at 100k there, 23 ms at 1M), so it stops at 100k. Above: 8-bit codes in inverted lists, the
# shortlist re-ranked with the exact vectors. 1,024 lists scanned 128 at a time gave recall@1 0.992 in 0.4 ms
# at 100k; at 1M, 4,096 lists scanned 256 at a time gave 0.994 in 1.9 ms (35 s to train and fill; fewer
# probes missed the recall, more missed the time). HNSW is not used: FAISS cannot remove from it, and at
# 1M it took 761 s to build and reached recall@1 0.981 only at 3.3 ms per query.
IVF_FROM = 100_000
IVF_STEPS = (IvfStep(1_000_000, 1024, 128), IvfStep(sys.maxsize, 4096, 256))
SHORTLIST = 20  # k + 20 codes re-ranked: scanning 512 of 1,024 lists at 100k, recall@1 and @10 were 1.000
RANGE_MARGIN = 0.05  # `within`'s bound widened by this: the codes' distance error was at most 0.0058
AMONG_EXACT = 10_000  # enrolled faces (`who`) are few: reading and comparing all of them is exact and cheap


@dataclass(frozen=True)
class Scale:
    """Which index a gallery of a given size gets, and how an IVF index is searched. The defaults are the
    engine's (see above); tests pass small ones to get every type from a few hundred vectors."""

    ivf_from: int = IVF_FROM  # below this many vectors, exact search
    steps: tuple[IvfStep, ...] = IVF_STEPS  # by size, the last one for every larger gallery
    train_per_list: int = 40  # training vectors per inverted list (FAISS's k-means asks for 39 at least)
    shortlist: int = SHORTLIST  # an IVF search re-ranks its k + shortlist best codes with the exact vectors
    range_margin: float = RANGE_MARGIN  # cosine distance added to `within`'s bound before the re-ranking
    among_exact: int = AMONG_EXACT  # a search among at most this many ids compares their exact vectors

    def __post_init__(self):
        if not self.steps or self.ivf_from < max(s.lists for s in self.steps):
            raise ValueError("an IVF index is trained on at least as many vectors as it has lists: "
                             "give ivf_from at least the largest step's lists")

    def index_type(self, count: int) -> str:
        """The index type of a gallery of `count` vectors."""
        if count < self.ivf_from:
            return EXACT
        return f"IVF{self._step(count).lists},SQ8"

    def training_size(self, index_type: str, count: int) -> int:
        """How many of `count` vectors to train an index of this type on (0 for the exact index)."""
        lists = ivf_lists(index_type)
        return min(count, lists * self.train_per_list) if lists else 0

    def nprobe(self, lists: int) -> int:
        """Inverted lists probed per query in an IVF index of `lists` lists."""
        return next((s.nprobe for s in self.steps if s.lists == lists), self.steps[-1].nprobe)

    def _step(self, count: int) -> IvfStep:
        return next((s for s in self.steps if count < s.below), self.steps[-1])


def ivf_lists(index_type: str) -> int:
    """The inverted lists of an `IVF{lists},SQ8` index type; 0 for any other type."""
    match = _IVF.fullmatch(index_type)
    return int(match.group(1)) if match else 0


def describe(index: faiss.Index) -> str:
    """The index type (factory string) of a FAISS index this module builds; the class name of any other."""
    if isinstance(index, faiss.IndexIDMap2) and isinstance(faiss.downcast_index(index.index), faiss.IndexFlatIP):
        return EXACT
    if (isinstance(index, faiss.IndexIVFScalarQuantizer) and index.metric_type == faiss.METRIC_INNER_PRODUCT
            and index.sq.qtype == faiss.ScalarQuantizer.QT_8bit):
        return f"IVF{index.nlist},SQ8"
    return type(index).__name__


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The ids held by an index of a type this module builds (int64)."""
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    if isinstance(index, faiss.IndexIVF):
        lists = index.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(index.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    raise ValueError(f"cannot list the ids of a {type(index).__name__}")


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
    """Unit vectors under int64 ids; search answers exact cosine distances, smallest first.

    `stored` gives the exact vectors of ids (the database's copy); an IVF index needs it to re-rank what its
    codes found, the exact index never calls it. `scale` says how an IVF index is searched.
    """

    def __init__(self, dim: int, index: faiss.Index | None = None, stored: StoredVectors | None = None,
                 scale: Scale | None = None):
        if index is None:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if index.d != dim:
            raise ValueError(f"index holds vectors of dimension {index.d}, expected {dim}")
        self.type = describe(index)
        if self.type != EXACT and not ivf_lists(self.type):
            raise ValueError(f"a {self.type} index is no type the engine builds ({EXACT} or IVF<lists>,SQ8)")
        self.dim = dim
        self.scale = scale or Scale()
        self._index = index
        self._stored = stored
        self._ids: set[int] = set(stored_ids(index).tolist())

    @classmethod
    def new(cls, dim: int, index_type: str, training: np.ndarray | None = None,
            stored: StoredVectors | None = None, scale: Scale | None = None) -> VectorIndex:
        """An empty index of `index_type` (`EXACT`, or `IVF{lists},SQ8` trained on the `training` vectors)."""
        if index_type == EXACT:
            return cls(dim, None, stored, scale)
        if not ivf_lists(index_type):
            raise ValueError(f"unknown index type {index_type!r}: {EXACT} or IVF<lists>,SQ8")
        index = faiss.index_factory(dim, index_type, faiss.METRIC_INNER_PRODUCT)
        if training is None or len(training) < ivf_lists(index_type):
            raise ValueError(f"a {index_type} index needs at least {ivf_lists(index_type)} training vectors")
        index.train(_rows(training, dim))
        return cls(dim, index, stored, scale)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self._ids)

    @property
    def faiss_index(self) -> faiss.Index:
        """The FAISS index itself, for measurements (`bench/faiss_scale.py`); change it only through this class."""
        return self._index

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
        n = len(vectors)
        if self.count == 0 or k <= 0:
            return np.full((n, max(k, 0)), np.inf, np.float32), np.full((n, max(k, 0)), -1, np.int64)
        selector = None
        if among is not None:
            among = np.ascontiguousarray(among, dtype=np.int64)
            if self.type != EXACT and len(among) <= self.scale.among_exact:
                # a few ids (the enrolled faces `who` searches) may sit in lists no probe reaches: compare them all
                return _nearest(vectors, *self._exact_vectors(among), k)
            selector = faiss.IDSelectorBatch(among)
        if self.type == EXACT:
            params = None if selector is None else faiss.SearchParameters(sel=selector)
            sims, ids = self._index.search(vectors, k, params=params)
            return _distances(sims, ids), ids.astype(np.int64)
        _, shortlist = self._index.search(vectors, k + self.scale.shortlist, params=self._ivf_params(selector))
        return _padded(self._rerank(vectors, [row[row >= 0] for row in shortlist]), k)

    def within(self, vectors: np.ndarray, max_distance: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query, every id at a cosine distance below `max_distance`: (ids, distances), nearest first.

        An IVF index looks in the lists it probes, with a bound widened by `Scale.range_margin` so that no
        code's rounding hides a face under the bound; the exact distances then decide."""
        vectors = self._prepare(vectors)
        if self.count == 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(len(vectors))]
        if self.type == EXACT:
            limits, sims, ids = self._index.range_search(vectors, 1.0 - max_distance)
            found = [(ids[lo:hi].astype(np.int64), _distances(sims[lo:hi], ids[lo:hi]))
                     for lo, hi in pairwise(limits)]
        else:
            limits, _, ids = self._index.range_search(vectors, 1.0 - max_distance - self.scale.range_margin,
                                                      params=self._ivf_params(None))
            found = [(i[d < max_distance], d[d < max_distance])
                     for i, d in self._rerank(vectors, [ids[lo:hi] for lo, hi in pairwise(limits)])]
        out = []
        for ids, d in found:
            order = np.argsort(d, kind="stable")
            out.append((ids[order], d[order]))
        return out

    def vector(self, face_id: int) -> np.ndarray:
        """The stored vector of one id (KeyError when absent)."""
        if face_id not in self._ids:
            raise KeyError(face_id)
        if self.type == EXACT:
            return self._index.reconstruct(int(face_id))
        held, vectors = self._exact_vectors(np.array([face_id], np.int64))
        if len(held) == 0:
            raise KeyError(face_id)
        return vectors[0]

    def save(self, path: Path, model_version: str, on_step: Callable[[str], None] | None = None) -> Sidecar:
        """Write the index and its sidecar beside `path` and rename them into place (never half-written).

        Temporary files left behind by an earlier save that was killed are removed first. `on_step`, when
        given, is told the steps of each file's write (see `models.files.write_atomic`): tests stop a save there.
        """
        sidecar = Sidecar(model_version=model_version, index_type=self.type, dim=self.dim, count=self.count,
                          max_id=max(self._ids, default=-1))
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(path)
        remove_leftovers(sidecar_path(path))
        write_atomic(path, faiss.serialize_index(self._index).tobytes(), private=True, on_step=on_step)
        write_atomic(sidecar_path(path), json.dumps(asdict(sidecar), indent=2).encode(), private=True,
                     on_step=on_step)
        return sidecar

    @classmethod
    def load(cls, path: Path, stored: StoredVectors | None = None,
             scale: Scale | None = None) -> tuple[VectorIndex, Sidecar] | None:
        """The index saved at `path` with its sidecar, or None when either is missing, damaged or they disagree
        (on the count, the dimension or the index type). Whether the type suits the gallery's size is the
        caller's to judge (`Scale.index_type`)."""
        try:
            sidecar = Sidecar(**json.loads(sidecar_path(path).read_text()))
            index = faiss.read_index(str(path))
        except (OSError, ValueError, TypeError, RuntimeError):
            return None
        if index.ntotal != sidecar.count or index.d != sidecar.dim or describe(index) != sidecar.index_type:
            return None
        try:
            return cls(sidecar.dim, index, stored, scale), sidecar
        except ValueError:
            return None  # a type the engine does not build

    def _ivf_params(self, selector: faiss.IDSelector | None) -> faiss.SearchParametersIVF:
        params = faiss.SearchParametersIVF(nprobe=self.scale.nprobe(self._index.nlist))
        if selector is not None:
            params.sel = selector
        return params

    def _exact_vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ids of `ids` held here and in the stored source, with their exact vectors."""
        if self._stored is None:
            raise RuntimeError(f"a {self.type} index holds rounded codes: give it the stored exact vectors")
        wanted = np.array([i for i in dict.fromkeys(ids.tolist()) if i in self._ids], np.int64)
        held, vectors = self._stored(wanted) if len(wanted) else (wanted, None)
        if len(held) == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return np.asarray(held, np.int64), self._prepare(vectors)

    def _rerank(self, queries: np.ndarray, candidates: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each query's candidate ids with their exact cosine distances, in no particular order; the stored
        vectors of all of them are read at once."""
        held, vectors = self._exact_vectors(np.concatenate(candidates).astype(np.int64))
        row_of = {i: r for r, i in enumerate(held.tolist())}
        out = []
        for query, ids in zip(queries, candidates):
            rows = np.array([row_of[i] for i in ids.tolist() if i in row_of], np.int64)
            out.append((held[rows], cosine_distances(query[None], vectors[rows])[0]))
        return out

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        # FAISS wants C-contiguous float32 rows
        return _rows(vectors, self.dim)


def _rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if vectors.shape[1] != dim:
        raise ValueError(f"vectors of dimension {vectors.shape[1]}, the index holds {dim}")
    return vectors


def _distances(sims: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.where(ids >= 0, from_similarity(sims), np.inf).astype(np.float32)


def _nearest(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: the k nearest of (ids, vectors) to each query, padded like `VectorIndex.search`."""
    d = cosine_distances(queries, vectors)
    return _padded([(ids, row) for row in d], k)


def _padded(found: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query (ids, distances) in any order -> the k nearest of each, (n, k) distances and ids, padded with
    inf and -1."""
    distances = np.full((len(found), k), np.inf, np.float32)
    out = np.full((len(found), k), -1, np.int64)
    for q, (ids, d) in enumerate(found):
        order = np.lexsort((ids, d))[:k]  # by distance, then id, as the exact index breaks ties
        distances[q, :len(order)] = d[order]
        out[q, :len(order)] = ids[order]
    return distances, out
