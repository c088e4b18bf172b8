"""FAISS index types at gallery scale, on synthetic face vectors: build time, memory, query time and recall.

    nice -n 5 python bench/faiss_scale.py --threads 1 --nprobe 64,128,512 --json faiss_scale.json
    python bench/faiss_scale.py --sizes 100000 --queries 200          # a quick look, half a minute

The first command (100k, 1M and 10M faces, 1,000 queries each) took 41 minutes on this project's 2-core
machine with other jobs coming and going: 13 of them building HNSW at 1M, and 20 at 10M, where the build is
stopped after `--hnsw-max-build-s` (default 1200 s) and reported as stopped. At 10M the float vectors and
the exact index take 10.2 GB together. Nothing is written to disk but `--json`. `--threads` defaults to all
cores; with another job holding a core, two FAISS threads ran slower than one (OpenMP threads wait for each
other), hence `--threads 1`.

Data, shaped like the shipped extractor's output: 128-d unit vectors of `faces / 10` identities, each face
given a random identity (so about 10 faces per person). An identity is a random unit centre: a normal
vector whose variance falls off along the dimensions as exp(-i / 6) (in a random rotation), plus 0.2 times
a direction shared by everyone. A face is its identity's centre plus isotropic normal noise of norm s
(s uniform in 0.45..2.0 per face), normalised. The parameters were picked so that distances land where the
shipped model's do (models/weights/MODEL_CARD.md, the LFW histogram beside it): the script prints the
distances of its own pairs first (same person about 0.3..0.8, different people about 0.75..1.2, and the
share of each under the calibrated thresholds 0.5271 for FAR 1e-3 and 0.6397 for FAR 1e-2). Queries are
fresh faces of identities in the gallery. All of it is generated in chunks from `--seed`.

Rows, per gallery size:

- exact: `IndexFlatIP`, the reference every recall is measured against (the engine's `IDMap2,FlatIP`).
- HNSW: `IndexHNSWFlat` (float vectors and a graph), M and efConstruction from the options, searched at
  each `--hnsw-ef-search`. Added in chunks of 100k; when the build passes `--hnsw-max-build-s` it stops
  there, and the row says how far it got and is not searched (a partial graph answers another question).
- IVF SQ8 + exact re-rank: the engine's own large-gallery index, built and searched through
  `indexer.vectors.VectorIndex` with the engine's `Scale` (lists for this size, nprobe, shortlist): trained
  on a seeded sample of the gallery, 8-bit codes; each query's k + shortlist best codes re-ranked with
  the exact vectors. Here those come from the float array in memory; in the engine from the database.
  `--nprobe` adds rows at other nprobe values.

Columns:

- build s: wall seconds to build the index from the float vectors in memory (IVF: training and adding).
- bytes/face: the serialized size of the FAISS index (what `faiss.write_index` writes, which is also what
  it holds in memory) divided by the faces. For IVF that is the codes, ids and centroids; the engine keeps
  the exact vectors in its database on disk, and a set of the ids in Python, neither counted here.
- ms/query, one at a time: median wall time of one query of k=10 per call, over `--single` queries, FAISS on
  one thread (one photo's face as `who` asks; with two OpenMP threads a single query waits for the second
  thread whenever another job holds a core).
- ms/query, batch: wall time of all `--queries` queries in one call divided by their number, FAISS on
  `--threads` threads.
- recall@1: share of queries whose first answer is the exact first neighbour. recall@10: share of the exact
  10 nearest found among the 10 answers, averaged over queries.

Memory: at most one index and the float vectors (`faces` x 512 bytes, 5.1 GB at 10M) are alive at once.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from indexer.vectors import IvfStep, Scale, VectorIndex, ivf_lists  # noqa: E402

DIM = 128
FACES_PER_IDENTITY = 10
SPECTRUM_DECAY = 6.0  # identity centres: variance along dimension i falls off as exp(-i / this)
SHARED = 0.2  # weight of the direction all identities share
SPREAD = (0.45, 2.0)  # norm of a face's noise around its identity, uniform in this range
CHUNK = 1_000_000  # faces generated at a time
ADD_CHUNK = 100_000  # faces added to an index at a time
K = 10
THRESHOLDS = {"FAR 1e-3": 0.5271, "FAR 1e-2": 0.6397}  # the shipped model's, models/weights/extractor.json


def identity_centres(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, DIM) unit centres: anisotropic normal vectors plus a shared direction, normalised."""
    scale = np.sqrt(np.exp(-np.arange(DIM) / SPECTRUM_DECAY))
    scale = (scale / np.linalg.norm(scale)).astype(np.float32)
    rotation = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0].astype(np.float32)
    shared = rng.standard_normal(DIM).astype(np.float32)
    shared /= np.linalg.norm(shared)
    centres = (rng.standard_normal((n, DIM), dtype=np.float32) * scale) @ rotation + SHARED * shared
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def faces_of(centres: np.ndarray, identities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One new face of each given identity: its centre plus noise of norm uniform in SPREAD, normalised."""
    spread = rng.uniform(*SPREAD, size=(len(identities), 1)).astype(np.float32)
    noise = rng.standard_normal((len(identities), DIM), dtype=np.float32) / np.float32(np.sqrt(DIM))
    faces = centres[identities] + spread * noise
    return faces / np.linalg.norm(faces, axis=1, keepdims=True)


def synthetic_gallery(n: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, DIM) gallery faces, their identities, and (queries, DIM) fresh faces of identities in the gallery."""
    rng = np.random.default_rng(seed)
    centres = identity_centres(max(1, n // FACES_PER_IDENTITY), rng)
    faces = np.empty((n, DIM), np.float32)
    identities = np.empty(n, np.int64)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        identities[start:stop] = rng.integers(len(centres), size=stop - start)
        faces[start:stop] = faces_of(centres, identities[start:stop], rng)
    asked = identities[rng.integers(n, size=queries)]
    return faces, identities, faces_of(centres, asked, rng)


def shape_report(faces: np.ndarray, identities: np.ndarray, pairs: int = 200_000, seed: int = 1) -> dict:
    """Percentiles of same-person and different-person cosine distances, and the share under each threshold."""
    order = np.argsort(identities, kind="stable")
    same_at = np.nonzero(identities[order][1:] == identities[order][:-1])[0][:pairs]
    a, b = faces[order[same_at]], faces[order[same_at + 1]]
    same = 1.0 - np.einsum("ij,ij->i", a, b)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(len(faces), size=(2, pairs))
    keep = identities[i] != identities[j]
    different = 1.0 - np.einsum("ij,ij->i", faces[i[keep]], faces[j[keep]])
    out = {}
    for name, d in (("same person", same), ("different people", different)):
        out[name] = {"pairs": len(d),
                     "percentiles 5/25/50/75/95": np.percentile(d, [5, 25, 50, 75, 95]).round(3).tolist(),
                     **{f"under {t} ({far})": round(float((d < t).mean()), 4) for far, t in THRESHOLDS.items()}}
    return out


def serialized_bytes(index: faiss.Index) -> int:
    """The size `faiss.write_index` writes, counted without keeping the bytes."""
    total = 0

    def count(data: bytes) -> int:
        nonlocal total
        total += len(data)
        return len(data)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return total


def one_at_a_time(search, queries: np.ndarray) -> float:
    """Median ms of `search` on one query at a time, FAISS on one thread."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        times = []
        for q in queries:
            start = time.perf_counter()
            search(q[None])
            times.append(time.perf_counter() - start)
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.median(times) * 1e3)


def batched(search, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """ms per query of `search` on all queries in one call, and its (n, K) answer ids."""
    start = time.perf_counter()
    ids = search(queries)
    return (time.perf_counter() - start) * 1e3 / len(queries), ids


def recall_at(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """recall@1 (k=1): first answers equal; recall@k: share of the exact k found among the k answers."""
    if k == 1:
        return float(np.mean(found[:, 0] == exact[:, 0]))
    return float(np.mean([len(set(f[:k]) & set(e[:k])) / k for f, e in zip(found.tolist(), exact.tolist())]))


def row(faces: int, index: str, params: str, build_s: float | None, nbytes: int | None, single_ms: float | None,
        batch_ms: float | None, found: np.ndarray | None, exact: np.ndarray | None, note: str = "") -> dict:
    return {"faces": faces, "index": index, "params": params, "build_s": build_s,
            "bytes_per_face": None if nbytes is None else nbytes / faces,
            "ms_one_at_a_time": single_ms, "ms_batch": batch_ms,
            "recall@1": None if found is None else recall_at(found, exact, 1),
            "recall@10": None if found is None else recall_at(found, exact, K), "note": note}


def measure_exact(faces: np.ndarray, queries: np.ndarray, single: int) -> tuple[dict, np.ndarray]:
    """The exact row, and the exact K nearest of every query (the reference)."""
    start = time.perf_counter()
    index = faiss.IndexFlatIP(DIM)
    for first in range(0, len(faces), ADD_CHUNK):
        index.add(faces[first:first + ADD_CHUNK])
    build = time.perf_counter() - start
    batch_ms, exact = batched(lambda q: index.search(q, K)[1], queries)
    single_ms = one_at_a_time(lambda q: index.search(q, K), queries[:single])
    out = row(len(faces), "exact", "IndexFlatIP", build, serialized_bytes(index), single_ms, batch_ms, exact, exact,
              "the reference")
    return out, exact


def measure_hnsw(faces: np.ndarray, queries: np.ndarray, exact: np.ndarray, m: int, ef_construction: int,
                 ef_searches: list[int], single: int, max_build_s: float) -> list[dict]:
    index = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    start = time.perf_counter()
    for first in range(0, len(faces), ADD_CHUNK):
        if time.perf_counter() - start > max_build_s:
            added = index.ntotal
            elapsed = time.perf_counter() - start
            note = (f"build stopped after {elapsed:.0f} s with {added:,} of {len(faces):,} faces added "
                    f"({added / elapsed:,.0f} faces/s); not searched")
            return [row(len(faces), "HNSW", f"M={m}, efConstruction={ef_construction}", None,
                        None, None, None, None, None, note)]
        index.add(faces[first:first + ADD_CHUNK])
    build = time.perf_counter() - start
    nbytes = serialized_bytes(index)
    rows = []
    for ef in ef_searches:
        index.hnsw.efSearch = ef
        batch_ms, found = batched(lambda q: index.search(q, K)[1], queries)
        single_ms = one_at_a_time(lambda q: index.search(q, K), queries[:single])
        rows.append(row(len(faces), "HNSW", f"M={m}, efConstruction={ef_construction}, efSearch={ef}", build,
                        nbytes, single_ms, batch_ms, found, exact))
    return rows


def measure_ivf(faces: np.ndarray, queries: np.ndarray, exact: np.ndarray, scale: Scale, nprobes: list[int],
                single: int, seed: int) -> list[dict]:
    """The engine's IVF index (`VectorIndex`, `Scale`) at this size, re-ranking from the float vectors."""
    n = len(faces)
    index_type = scale.index_type(max(n, scale.ivf_from))  # below ivf_from the engine searches exactly
    lists = ivf_lists(index_type)

    def stored(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ids, faces[ids]

    start = time.perf_counter()
    sample = np.sort(np.random.default_rng(seed).choice(n, size=scale.training_size(index_type, n), replace=False))
    index = VectorIndex.new(DIM, index_type, faces[sample], stored, scale)
    for first in range(0, n, ADD_CHUNK):
        index.add(np.arange(first, min(n, first + ADD_CHUNK)), faces[first:first + ADD_CHUNK])
    build = time.perf_counter() - start
    nbytes = serialized_bytes(index.faiss_index)
    error = code_error(index.faiss_index, faces, queries, scale.nprobe(lists))
    rows = []
    engine = scale.nprobe(lists)
    for nprobe in [engine] + [p for p in nprobes if p != engine]:
        index.scale = replace(scale, steps=(IvfStep(sys.maxsize, lists, nprobe),))
        batch_ms, found = batched(lambda q: index.search(q, K)[1], queries)
        single_ms = one_at_a_time(lambda q: index.search(q, K), queries[:single])
        note = "the engine's setting" if nprobe == engine else ""
        if scale.index_type(n) != index_type:
            note = f"the engine searches {n:,} faces exactly"
        if nprobe == engine:
            note += f"; codes' distance error at most {error:.4f}"
        rows.append(row(n, "IVF SQ8 + exact re-rank", f"{index_type}, nprobe={nprobe}, shortlist k+{scale.shortlist}",
                        build, nbytes, single_ms, batch_ms, found, exact, note))
        rows[-1]["code_error_max"] = error
    return rows


def code_error(index: faiss.IndexIVF, faces: np.ndarray, queries: np.ndarray, nprobe: int) -> float:
    """The largest difference between a cosine distance computed from the 8-bit codes and the exact one, over
    each query's K best codes."""
    sims, ids = index.search(queries, K, params=faiss.SearchParametersIVF(nprobe=nprobe))
    exact = np.einsum("qd,qkd->qk", queries, faces[np.maximum(ids, 0)])
    return float(np.abs(sims - exact)[ids >= 0].max())


def fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def line(r: dict) -> str:
    """One row of the Markdown table."""
    return (f"| {r['faces']:,} | {r['index']} | {r['params']} | {fmt(r['build_s'], 1)} "
            f"| {fmt(r['bytes_per_face'], 0)} | {fmt(r['ms_one_at_a_time'], 3)} | {fmt(r['ms_batch'], 3)} "
            f"| {fmt(r['recall@1'], 3)} | {fmt(r['recall@10'], 3)} | {r['note']} |")


def table(rows: list[dict], queries: int, threads: int) -> str:
    threads_text = f"{threads} thread{'s' * (threads != 1)}"
    header = [f"| faces | index | parameters | build s | bytes/face | ms/query, one at a time (1 thread) "
              f"| ms/query, batch of {queries:,} ({threads_text}) | recall@1 | recall@10 | note |",
              "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    return "\n".join(header + [line(r) for r in rows])


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda text: [int(float(x)) for x in text.split(",") if x]  # noqa: E731
    ap.add_argument("--sizes", type=ints, default=[100_000, 1_000_000, 10_000_000],
                    help="gallery sizes, comma-separated")
    ap.add_argument("--queries", type=int, default=1000, help="queries per size (recall and batch time)")
    ap.add_argument("--single", type=int, default=200, help="of them, timed one at a time")
    ap.add_argument("--types", default="exact,hnsw,ivf",
                    help="which rows: exact (always run, the reference), hnsw, ivf")
    ap.add_argument("--hnsw-m", type=int, default=48)
    ap.add_argument("--hnsw-ef-construction", type=int, default=128)
    ap.add_argument("--hnsw-ef-search", type=ints, default=[256, 512])
    ap.add_argument("--hnsw-max-build-s", type=float, default=1200.0,
                    help="stop an HNSW build after this long")
    ap.add_argument("--nprobe", type=ints, default=[], help="IVF rows at these nprobe values beside the engine's")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="FAISS threads for builds and batches")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the rows and the run's details here")
    return ap.parse_args()


def measure_size(n: int, args: argparse.Namespace, report: dict) -> None:
    """Measure every asked index type on a gallery of n faces, one index alive at a time; the rows go into
    `report` (and its `shape` when not set yet) and to stderr as they come."""
    start = time.perf_counter()
    faces, identities, queries = synthetic_gallery(n, args.queries, args.seed)
    if report["shape"] is None:
        report["shape"] = {"faces": n, **shape_report(faces, identities)}
        print(json.dumps(report["shape"]), file=sys.stderr)
    del identities
    print(f"{n:,} faces generated in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    types = set(args.types.split(","))
    exact_row, exact = measure_exact(faces, queries, args.single)
    keep(report, [exact_row])
    if "hnsw" in types:
        keep(report, measure_hnsw(faces, queries, exact, args.hnsw_m, args.hnsw_ef_construction, args.hnsw_ef_search,
                                  args.single, args.hnsw_max_build_s))
    if "ivf" in types:
        keep(report, measure_ivf(faces, queries, exact, Scale(), args.nprobe, args.single, args.seed))


def keep(report: dict, rows: list[dict]) -> None:
    """Add rows to the report and show them on stderr at once."""
    gc.collect()  # the index just measured is gone before the next is built
    report["rows"] += rows
    print("\n".join(line(r) for r in rows), file=sys.stderr, flush=True)


def main() -> None:
    args = parse_args()
    faiss.omp_set_num_threads(args.threads)
    started = dt.datetime.now().astimezone()
    report = {"started": started.isoformat(timespec="seconds"), "machine": platform.machine(),
              "cores": os.cpu_count(), "python": platform.python_version(), "faiss": faiss.__version__,
              "args": vars(args), "engine_scale": repr(Scale()), "shape": None, "rows": []}
    print(f"# FAISS at gallery scale, {started:%Y-%m-%d %H:%M}, {platform.machine()}, {os.cpu_count()} cores, "
          f"faiss {faiss.__version__}, {args.threads} threads", file=sys.stderr)
    for n in args.sizes:
        measure_size(n, args, report)
        gc.collect()
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
    report["seconds"] = round((dt.datetime.now().astimezone() - started).total_seconds())
    print(table(report["rows"], args.queries, args.threads))
    print(f"\n{started:%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}, "
          f"--threads {args.threads}; whole run {report['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
