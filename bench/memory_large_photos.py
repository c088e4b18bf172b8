"""Peak memory of `facesearch index` on a folder of large photos (12 MP and up).

Composes N photos of 4000x3000 pixels (default 200) in a temporary folder outside the repository: each a
smooth random background with grain, with a few LFW faces pasted at known places, scaled up so that each
face is still 75-120 px on the 1280 px copy the detector works on; saved as JPEG quality 90, one photo at a
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
import os
import platform
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops

WIDTH, HEIGHT = 4000, 3000  # 12 MP
GRID_COLS, GRID_ROWS = 4, 3  # one pasted face at most per 1000x1000 cell, so faces never overlap
TILE_PX = (600, 950)  # a 250 px LFW picture pasted at this size: its face becomes about 240-380 px
# LFW pictures are centred on the face: its centre lies in this part of the picture (fractions of the side)
FACE_CENTRE_X = (0.3, 0.7)
FACE_CENTRE_Y = (0.3, 0.75)
POLL_S = 0.05


def default_data() -> Path:
    return Path(os.environ.get("FACESEARCH_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def lfw_pictures(data: Path) -> list[Path]:
    """One picture path per LFW person folder (the first), in name order."""
    root = data / "lfw" / "images"
    if not root.is_dir():
        sys.exit(f"no LFW pictures at {root}; set FACESEARCH_DATA or pass --data")
    out = []
    for person in sorted(os.listdir(root)):
        files = sorted(os.listdir(root / person))
        if files:
            out.append(root / person / files[0])
    return out


def background(rng: random.Random) -> Image.Image:
    """A smooth random colour field at full size with photo-like grain."""
    small = Image.new("RGB", (8, 6))
    small.putdata([tuple(rng.randrange(30, 226) for _ in range(3)) for _ in range(8 * 6)])
    field = small.resize((WIDTH, HEIGHT), Image.BICUBIC)
    grain = Image.effect_noise((WIDTH, HEIGHT), 10).convert("RGB")  # grey noise centred on 128
    return ImageChops.add(field, grain, scale=1.0, offset=-128)


def compose(path: Path, pictures: list[Path], rng: random.Random, faces_per_photo: tuple[int, int]) -> list[tuple]:
    """Write one composed photo to `path`; return the regions (x0, y0, x1, y1) where each placed face's centre lies."""
    photo = background(rng)
    cells = rng.sample([(c, r) for c in range(GRID_COLS) for r in range(GRID_ROWS)], rng.randint(*faces_per_photo))
    regions = []
    cell_w, cell_h = WIDTH // GRID_COLS, HEIGHT // GRID_ROWS
    for col, row in cells:
        size = rng.randint(*TILE_PX)
        x = col * cell_w + rng.randint(0, max(0, cell_w - size))
        y = row * cell_h + rng.randint(0, max(0, cell_h - size))
        x, y = min(x, WIDTH - size), min(y, HEIGHT - size)
        with Image.open(rng.choice(pictures)) as face:
            photo.paste(face.convert("RGB").resize((size, size), Image.BICUBIC), (x, y))
        regions.append((x + FACE_CENTRE_X[0] * size, y + FACE_CENTRE_Y[0] * size,
                        x + FACE_CENTRE_X[1] * size, y + FACE_CENTRE_Y[1] * size))
    photo.save(path, "JPEG", quality=90)
    return regions


def facesearch_command() -> list[str]:
    beside = Path(sys.executable).parent / "facesearch"
    found = str(beside) if beside.exists() else shutil.which("facesearch")
    if not found:
        sys.exit("facesearch is not installed: pip install -e . in the repository first")
    return [found]


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


def faces_found(home: Path, placed: dict[str, list[tuple]]) -> tuple[int, int]:
    """(placed faces matched by a detection, detections matching no placed face), from the home's database."""
    by_path: dict[str, list[tuple[float, float]]] = {}
    with sqlite3.connect(home / "facesearch.db") as db:
        for path, x0, y0, x1, y1 in db.execute("SELECT p.path, f.x0, f.y0, f.x1, f.y1 FROM faces f "
                                               "JOIN photos p ON p.id = f.photo_id"):
            by_path.setdefault(path, []).append(((x0 + x1) / 2, (y0 + y1) / 2))
    matched = extra = 0
    for path, centres in by_path.items():
        regions = list(placed.get(path, []))
        for cx, cy in centres:
            hit = next((r for r in regions if r[0] <= cx <= r[2] and r[1] <= cy <= r[3]), None)
            if hit is None:
                extra += 1
            else:
                regions.remove(hit)
                matched += 1
    return matched, extra


def machine() -> str:
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    return f"{os.cpu_count()} cores {platform.machine()}, {mem_kib / 2**20:.1f} GiB RAM"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=200, help="how many 4000x3000 photos to compose")
    parser.add_argument("--faces", default="2,4", help="faces pasted per photo, min,max")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None, help="face data folder (default FACESEARCH_DATA or ../shared/data)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the photos and the home (default a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the photos and the home afterwards")
    parser.add_argument("--batch-size", type=int, default=None, help="passed to `facesearch index` (default its own, 16)")
    args = parser.parse_args()
    faces_per_photo = tuple(int(v) for v in args.faces.split(","))

    work = args.work or Path(tempfile.mkdtemp(prefix="facesearch-bench-"))
    photos_dir, home = work / "photos", work / "home"
    photos_dir.mkdir(parents=True, exist_ok=True)
    try:
        rng = random.Random(args.seed)
        pictures = lfw_pictures(args.data or default_data())
        placed: dict[str, list[tuple]] = {}
        start = time.monotonic()
        for i in range(args.photos):
            path = (photos_dir / f"photo_{i:04d}.jpg").absolute()
            placed[str(path)] = compose(path, pictures, rng, faces_per_photo)
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
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
