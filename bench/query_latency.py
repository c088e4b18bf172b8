"""Query latency: `who` on a 1920x1080 photo with 8 faces against a gallery of 10,000 enrolled faces, warm
(the Python API, models loaded) and cold (a fresh `facesearch who` process), and how fast `--help` answers.

    python bench/query_latency.py --json query_latency.json
    python bench/query_latency.py --faces 500 --repeats 3     # a 2-minute look

The gallery is built once into `--work` (default ~/.cache/facesearch/bench-query) and reused by later runs
with the same `--faces`; building 10,000 faces takes about 6 minutes on 2 cores (`facesearch enroll
--folders` over a folder of links to LFW photos, outside the repository). It holds LFW people in name
order, all their photos, except that one photo of each person with two or more is held back; the query
photo is composed (`bench/composed.py`) from 8 held-back photos, so each of its faces has a right answer.
`who` only searches enrolled faces, so enrolled faces are the gallery that matters for its latency.

Warm: `facesearch.api.who` is called once to load the models and trace the graphs, then `--repeats` more
times; the median is reported, with a breakdown of the median run taken by timing the functions `who`
calls, in place: decode (`read_image`), detect (the MTCNN detector), align (`align`, every face), embed
(the extractor, every face in one call, flip averaged) and search (the FAISS search). "other" is the
rest (opening the gallery, reading who is enrolled, grouping hits by person).
Cold: `facesearch --home HOME who PHOTO` as a new process, `--repeats` times, median; its start-up
(imports, loading the models) is cold minus warm. `--help`: `facesearch --help`, median of 5.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from composed import Layout, compose, default_data, facesearch_command, lfw_people, machine  # noqa: E402

QUERY_LAYOUT = Layout(1920, 1080, cols=4, rows=2, tile_px=(200, 420), faces=(8, 8))


def gallery_folders(data: Path, faces: int, work: Path) -> tuple[Path, list[tuple[str, Path]]]:
    """A folder of links, one subfolder per person, holding `faces` photos; and the held-back photos."""
    root = work / f"people-{faces}"
    held: list[tuple[str, Path]] = []
    chosen: list[tuple[str, list[Path]]] = []
    total = 0
    for name, files in lfw_people(data).items():
        if total >= faces:
            break
        if len(files) >= 2:
            held.append((name, files[-1]))
            files = files[:-1]
        files = files[:faces - total]
        chosen.append((name, files))
        total += len(files)
    if not root.exists():
        partial = root.with_name(root.name + ".partial")
        for name, files in chosen:
            (partial / name).mkdir(parents=True, exist_ok=True)
            for f in files:
                link = partial / name / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())
        partial.rename(root)
    enrolled = {name for name, _ in chosen}
    return root, [(name, p) for name, p in held if name in enrolled]


def build_gallery(home: Path, folders: Path) -> float:
    """Enroll every subfolder of `folders` into `home` (once: a finished home is reused). Seconds taken."""
    done = home / "enrolled.ok"
    if done.exists():
        return float(done.read_text())
    start = time.monotonic()
    subprocess.run(facesearch_command() + ["--home", str(home), "enroll", "--folders", str(folders)], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    done.write_text(str(seconds))
    return seconds


class Phases:
    """Wall time spent inside chosen functions during one `who` call, by phase name."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, phase: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
        return timed


@contextmanager
def timing(phases: Phases, detector, extractor):
    """Time decode, detect, align, embed and search where `who` calls them; everything is put back after."""
    import indexer.photos as photos
    import indexer.pipeline as pipeline
    from indexer.vectors import VectorIndex

    saved = [(photos, "read_image", photos.read_image), (pipeline, "align", pipeline.align),
             (VectorIndex, "search", VectorIndex.search), (detector, "detect", detector.detect),
             (extractor, "embed", extractor.embed)]
    photos.read_image = phases.wrap("decode", photos.read_image)
    pipeline.align = phases.wrap("align", pipeline.align)
    VectorIndex.search = phases.wrap("search", VectorIndex.search)
    detector.detect = phases.wrap("detect", detector.detect)
    extractor.embed = phases.wrap("embed", extractor.embed)
    try:
        yield
    finally:
        for owner, name, original in saved:
            if isinstance(owner, type) or owner in (photos, pipeline):
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # the instance attribute shadowed the method


def warm(home: Path, photo: Path, repeats: int) -> tuple[list[float], dict[str, float], list]:
    from facesearch import api
    from facesearch.config import load_config

    config = load_config(home=home)
    detector, extractor = api.load_detector(config), api.load_extractor(config)
    answers = api.who([photo], config, detector=detector, extractor=extractor)  # loads models, traces graphs
    runs = []
    for _ in range(repeats):
        phases = Phases()
        with timing(phases, detector, extractor):
            start = time.perf_counter()
            answers = api.who([photo], config, detector=detector, extractor=extractor)
            total = time.perf_counter() - start
        runs.append((total, dict(phases.seconds)))
    totals = [t for t, _ in runs]
    median_run = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return totals, median_run[1], answers


def cold(command: list[str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.monotonic() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=10_000, help="enrolled faces in the gallery")
    ap.add_argument("--repeats", type=int, default=10, help="warm and cold runs each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=None, help="face data (default FACESEARCH_DATA or ../shared/data)")
    ap.add_argument("--work", type=Path, default=Path("~/.cache/facesearch/bench-query").expanduser(),
                    help="where the gallery and the query photo are kept between runs")
    ap.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = ap.parse_args()
    data = args.data or default_data()
    args.work.mkdir(parents=True, exist_ok=True)

    folders, held = gallery_folders(data, args.faces, args.work)
    home = args.work / f"home-{args.faces}"
    print(f"gallery: {home} (enrolling {folders} unless done before)...", file=sys.stderr)
    build_s = build_gallery(home, folders)

    rng = random.Random(args.seed)
    picked = rng.sample(held, 8)
    photo = args.work / "query-1920x1080.jpg"
    compose(photo, [p for _, p in picked], random.Random(args.seed), QUERY_LAYOUT)

    totals, phases, answers = warm(home, photo, args.repeats)
    from facesearch import api
    from facesearch.config import load_config

    counts = api.status(load_config(home=home)).counts
    enrolled_faces = counts.faces - counts.gallery_faces
    named = sorted(f.name for a in answers for f in a.faces if f.name != api.UNKNOWN)
    truth = sorted(name for name, _ in picked)
    right = sum(min(named.count(n), truth.count(n)) for n in set(truth))

    cold_s = cold(facesearch_command() + ["--home", str(home), "who", str(photo)], args.repeats)
    help_s = cold(facesearch_command() + ["--help"], 5)

    warm_ms = 1000 * statistics.median(totals)
    cold_ms = 1000 * statistics.median(cold_s)
    other = warm_ms - 1000 * sum(phases.values())
    faces_found = sum(len(a.faces) for a in answers)
    lines = [
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d}, {machine()}; `python bench/query_latency.py --faces {args.faces} "
        f"--repeats {args.repeats}`. Gallery: {enrolled_faces} enrolled faces of {counts.people} "
        f"LFW people (built in {build_s / 60:.1f} min, once). Query: one 1920x1080 JPEG with 8 faces; "
        f"{faces_found} found, {right} of 8 named right.",
        "",
        "| measure | ms |",
        "| --- | --- |",
        f"| `who`, warm (API, median of {args.repeats}) | {warm_ms:.0f} |",
    ]
    for phase in ("decode", "detect", "align", "embed", "search"):
        lines.append(f"| - {phase} | {1000 * phases.get(phase, 0.0):.1f} |")
    lines += [
        f"| - other | {other:.1f} |",
        f"| `facesearch who`, cold (new process, median of {args.repeats}) | {cold_ms:.0f} |",
        f"| - start-up (cold minus warm) | {cold_ms - warm_ms:.0f} |",
        f"| `facesearch --help` (median of 5) | {1000 * statistics.median(help_s):.0f} |",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"), "machine": machine(),
            "gallery_faces": enrolled_faces, "warm_seconds": totals, "warm_phases_of_median": phases,
            "cold_seconds": cold_s, "help_seconds": help_s, "faces_found": faces_found, "named_right": right,
            "build_seconds": build_s}, indent=2))


if __name__ == "__main__":
    main()
