"""Peak memory of `facesearch index` on a folder of large photos (12 MP and up).

Composes N photos of 4000x3000 pixels (default 200) in a temporary folder outside the repository: each a
smooth random background with grain, with a few LFW faces pasted at known places, scaled up so that each
face is still about 60-100 px on the 1024 px copy the detector works on; saved as JPEG quality 90, one photo at a
time so this script stays small. Then runs `facesearch --home TMPHOME index FOLDER` as a child process and
measures:

- peak RSS: the child's resident-memory high-water mark as the kernel keeps it, read with
  `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` after the child is waited for (the largest of the
  children; this script starts no other). VmRSS polled every 50 ms from /proc/PID/status is printed
  beside it as a cross-check;
- wall time of the index run and photos per second;
- faces found vs faces placed: a placed face counts as found when a detected box's centre lies in the
  middle of its pasted LFW picture (where LFW centres the face). Other detections are counted apart
  (LFW pictures sometimes show a second person at their edge).

Prints one Markdown table. Example:

    python bench/memory_large_photos.py --photos 200
    python bench/memory_large_photos.py --photos 20 --work /tmp/fs-bench --keep --batch-size 4
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from composed import (  # noqa: E402
    Layout, Region, add_work_options, compose, default_data, facesearch_command, lfw_pictures, machine,
    score_detections, work_folder,
)

LAYOUT = Layout(width=4000, height=3000, cols=4, rows=3,  # 12 MP; one pasted face at most per 1000x1000 cell
                tile_px=(600, 950),  # a pasted LFW picture's side: its face becomes about 240-380 px
                faces=(2, 4))
WIDTH, HEIGHT = LAYOUT.width, LAYOUT.height
POLL_S = 0.05


def run_measured(command: list[str]) -> tuple[int, float, int, int]:
    """Run `command`; return its exit code, wall seconds, peak RSS from getrusage (KiB) and peak polled VmRSS (KiB)."""
    start = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    polled = 0
    status = Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    polled = max(polled, int(line.split()[1]))
        except (OSError, ValueError):
            pass  # the child is exiting
        time.sleep(POLL_S)
    seconds = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return child.returncode, seconds, peak, polled


def faces_found(home: Path, placed: dict[str, list[Region]]) -> tuple[int, int]:
    """(placed faces matched by a detection, detections matching no placed face), from the home's database."""
    centres: dict[str, list[tuple[float, float]]] = {}
    with sqlite3.connect(home / "facesearch.db") as db:
        for path, x0, y0, x1, y1 in db.execute("SELECT p.path, f.x0, f.y0, f.x1, f.y1 FROM faces f "
                                               "JOIN photos p ON p.id = f.photo_id"):
            centres.setdefault(path, []).append(((x0 + x1) / 2, (y0 + y1) / 2))
    return score_detections(centres, placed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=200, help="how many 4000x3000 photos to compose")
    parser.add_argument("--faces", default="2,4", help="faces pasted per photo, min,max")
    add_work_options(parser)
    parser.add_argument("--batch-size", type=int, default=None, help="passed to `facesearch index` (default its own, 16)")
    args = parser.parse_args()
    faces_per_photo = tuple(int(v) for v in args.faces.split(","))

    with work_folder(args, "facesearch-bench-") as work:
        photos_dir, home = work / "photos", work / "home"
        photos_dir.mkdir(parents=True, exist_ok=True)
        rng = random.Random(args.seed)
        pictures = lfw_pictures(args.data or default_data())
        placed: dict[str, list[tuple]] = {}
        start = time.monotonic()
        for i in range(args.photos):
            path = (photos_dir / f"photo_{i:04d}.jpg").absolute()
            placed[str(path)] = compose(path, pictures, rng, replace(LAYOUT, faces=faces_per_photo))
        compose_s = time.monotonic() - start
        folder_mib = sum(p.stat().st_size for p in photos_dir.iterdir()) / 2**20
        print(f"composed {args.photos} photos ({folder_mib:.0f} MiB of JPEG) in {compose_s:.0f} s; indexing...",
              file=sys.stderr)

        command = facesearch_command() + ["--home", str(home), "index", str(photos_dir)]
        if args.batch_size is not None:
            command += ["--batch-size", str(args.batch_size)]
        code, seconds, peak_kib, polled_kib = run_measured(command)
        if code != 0:
            sys.exit(f"{' '.join(command)} exited with {code}")
        n_placed = sum(len(r) for r in placed.values())
        matched, extra = faces_found(home, placed)

        rows = [
            ("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
            ("machine", machine()),
            ("photos", f"{args.photos} JPEG of {WIDTH}x{HEIGHT} ({WIDTH * HEIGHT / 1e6:.0f} MP), {folder_mib:.0f} MiB"),
            ("command", "`" + " ".join(["facesearch --home HOME index FOLDER"] + command[5:]) + "`"),
            ("peak RSS (getrusage ru_maxrss of the child)", f"{peak_kib / 1024:.0f} MiB"),
            ("peak VmRSS polled every 50 ms", f"{polled_kib / 1024:.0f} MiB"),
            ("wall time", f"{seconds:.0f} s ({args.photos / seconds:.2f} photos/s)"),
            ("placed faces found", f"{matched} of {n_placed} ({100 * matched / max(1, n_placed):.1f} %)"),
            ("other detections", str(extra)),
        ]
        print("| measure | value |\n| --- | --- |")
        for name, value in rows:
            print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
