"""Shared by the benchmarks: group photos composed from LFW pictures with the faces at known places, how to
score detections against them, and how to describe the machine.

A composed photo is a smooth random colour field with photo-like grain, with LFW pictures pasted at random
sizes into the cells of a grid (at most one per cell, so they never overlap). LFW pictures are centred on
the labelled face, so each placed face's centre lies in a known region of its pasted picture; a detection
whose box centre falls in that region finds the face. Other detections are counted apart (an LFW picture
sometimes shows a second person at its edge).
"""
from __future__ import annotations

import os
import platform
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops

# LFW pictures are centred on the face: its centre lies in this part of the picture (fractions of the side)
FACE_CENTRE_X = (0.3, 0.7)
FACE_CENTRE_Y = (0.3, 0.75)

Region = tuple[float, float, float, float]  # x0, y0, x1, y1 pixels: where one placed face's centre lies


@dataclass(frozen=True)
class Layout:
    """How photos of one kind are composed."""

    width: int
    height: int
    cols: int  # grid cells across; one picture at most per cell
    rows: int
    tile_px: tuple[int, int]  # a pasted picture's side, min and max pixels (the face is about 0.4 of it)
    faces: tuple[int, int]  # pictures pasted per photo, min and max


def add_work_options(parser) -> None:
    """The options every benchmark that composes photos shares: --seed, --data, --work, --keep."""
    parser.add_argument("--seed", type=int, default=0, help="seed of the photos drawn and composed")
    parser.add_argument("--data", type=Path, default=None, help="face data (default FACESEARCH_DATA or ../shared/data)")
    parser.add_argument("--work", type=Path, default=None, help="folder for photos and homes (default a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder afterwards")


@contextmanager
def work_folder(args, prefix: str) -> Iterator[Path]:
    """`--work`, or a new temporary folder; removed afterwards unless `--keep` (see `add_work_options`)."""
    work = args.work or Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def default_data() -> Path:
    return Path(os.environ.get("FACESEARCH_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def lfw_people(data: Path) -> dict[str, list[Path]]:
    """Every LFW person's pictures, in name order."""
    root = data / "lfw" / "images"
    if not root.is_dir():
        sys.exit(f"no LFW pictures at {root}; set FACESEARCH_DATA or pass --data")
    people = {}
    for person in sorted(os.listdir(root)):
        files = sorted(os.listdir(root / person))
        if files:
            people[person] = [root / person / f for f in files]
    return people


def lfw_pictures(data: Path) -> list[Path]:
    """One picture per LFW person (the first), in name order."""
    return [files[0] for files in lfw_people(data).values()]


def background(rng: random.Random, width: int, height: int) -> Image.Image:
    """A smooth random colour field with photo-like grain."""
    small = Image.new("RGB", (8, 6))
    small.putdata([tuple(rng.randrange(30, 226) for _ in range(3)) for _ in range(8 * 6)])
    field = small.resize((width, height), Image.BICUBIC)
    grain = Image.effect_noise((width, height), 10).convert("RGB")  # grey noise centred on 128
    return ImageChops.add(field, grain, scale=1.0, offset=-128)


def compose(path: Path, pictures: list[Path], rng: random.Random, layout: Layout) -> list[Region]:
    """Write one composed JPEG (quality 90) to `path`; return where each placed face's centre lies."""
    photo = background(rng, layout.width, layout.height)
    cells = rng.sample([(c, r) for c in range(layout.cols) for r in range(layout.rows)], rng.randint(*layout.faces))
    regions = []
    cell_w, cell_h = layout.width // layout.cols, layout.height // layout.rows
    for col, row in cells:
        size = rng.randint(*layout.tile_px)
        x = col * cell_w + rng.randint(0, max(0, cell_w - size))
        y = row * cell_h + rng.randint(0, max(0, cell_h - size))
        x, y = min(x, layout.width - size), min(y, layout.height - size)
        with Image.open(rng.choice(pictures)) as face:
            photo.paste(face.convert("RGB").resize((size, size), Image.BICUBIC), (x, y))
        regions.append((x + FACE_CENTRE_X[0] * size, y + FACE_CENTRE_Y[0] * size,
                        x + FACE_CENTRE_X[1] * size, y + FACE_CENTRE_Y[1] * size))
    photo.save(path, "JPEG", quality=90)
    return regions


def score_detections(centres: dict[str, list[tuple[float, float]]],
                     placed: dict[str, list[Region]]) -> tuple[int, int]:
    """(placed faces matched by a detection, detections matching no placed face); `centres` are box centres
    per photo path, `placed` the regions of `compose` per photo path."""
    matched = extra = 0
    for path, points in centres.items():
        regions = list(placed.get(path, []))
        for cx, cy in points:
            hit = next((r for r in regions if r[0] <= cx <= r[2] and r[1] <= cy <= r[3]), None)
            if hit is None:
                extra += 1
            else:
                regions.remove(hit)
                matched += 1
    return matched, extra


def facesearch_command() -> list[str]:
    """The `facesearch` executable of this environment."""
    beside = Path(sys.executable).parent / "facesearch"
    found = str(beside) if beside.exists() else shutil.which("facesearch")
    if not found:
        sys.exit("facesearch is not installed: pip install -e . in the repository first")
    return [found]


def machine() -> str:
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    return f"{os.cpu_count()} cores {platform.machine()}, {mem_kib / 2**20:.1f} GiB RAM"
