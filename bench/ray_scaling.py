"""Ray engine scaling: `facesearch index --engine ray` with 1 and 2 actors on this machine, the local engine
beside it, and what the measured scaling predicts for a cluster.

    python bench/ray_scaling.py --json ray_scaling.json
    python bench/ray_scaling.py --lfw 100 --composed 4      # a 3-minute look

One folder, written to a temporary folder outside the repository (seeded): `--lfw` LFW photos as stored
(160x160) and `--composed` group photos of 1920x1080 with 4-8 LFW faces each (`bench/composed.py`). Each run
is `facesearch --home FRESH_HOME index ... FOLDER` as a new process; wall time includes start-up (Ray, the
actors loading their models), which is reported apart: the same command on a folder of one photo.

The prediction: with wall time after start-up t(n) = s + p / n for n actors (s: the part that does not
spread, the main process scanning, hashing and writing; p: the part the actors share), the 1- and 2-actor runs
give s and p, and t(n) for larger n follows, e.g. a cluster of 2-core machines with one actor per core and the
database on PostgreSQL. It is a straight-line model from two points (Amdahl's law): treat it as what this
measurement suggests, not as a measurement of a cluster.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from composed import (  # noqa: E402
    Layout, add_work_options, compose, default_data, facesearch_command, lfw_people, lfw_pictures, machine,
    work_folder,
)

LAYOUT = Layout(1920, 1080, cols=4, rows=2, tile_px=(150, 400), faces=(4, 8))


def index_seconds(folder: Path, home: Path, options: list[str]) -> tuple[float, str]:
    shutil.rmtree(home, ignore_errors=True)
    start = time.monotonic()
    done = subprocess.run(facesearch_command() + ["--home", str(home), "index", *options, str(folder)],
                          capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"facesearch index {' '.join(options)} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout.splitlines()[0] if done.stdout else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=int, default=400, help="LFW photos in the folder")
    ap.add_argument("--composed", type=int, default=20, help="1920x1080 group photos in the folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    add_work_options(ap)
    args = ap.parse_args()
    with work_folder(args, "facesearch-ray-bench-") as work:
        rng = random.Random(args.seed)
        data = args.data or default_data()
        every = [p for files in lfw_people(data).values() for p in files]
        folder, one = work / "photos", work / "one"
        folder.mkdir(parents=True)
        one.mkdir()
        for p in rng.sample(every, args.lfw):
            shutil.copy2(p, folder / p.name)
        pictures = lfw_pictures(data)
        for i in range(args.composed):
            compose(folder / f"group_{i:03d}.jpg", pictures, rng, LAYOUT)
        shutil.copy2(every[-1], one / "only.jpg")
        photos = args.lfw + args.composed

        runs = {"local engine, 1 process": [], "ray, 1 actor": ["--engine", "ray", "--workers", "1"],
                "ray, 2 actors": ["--engine", "ray", "--workers", "2"]}
        rows = {}
        for name, options in runs.items():
            startup, _ = index_seconds(one, work / "home-one", options)
            seconds, summary = index_seconds(folder, work / "home", options)
            rows[name] = {"seconds": seconds, "startup": startup, "summary": summary}
            print(f"{name}: {seconds:.1f} s ({summary}); start-up {startup:.1f} s", file=sys.stderr)

        t1 = rows["ray, 1 actor"]["seconds"] - rows["ray, 1 actor"]["startup"]
        t2 = rows["ray, 2 actors"]["seconds"] - rows["ray, 2 actors"]["startup"]
        parallel = max(0.0, 2 * (t1 - t2))  # t(n) = s + p / n through the two points
        serial = max(0.0, t1 - parallel)
        predicted = {n: serial + parallel / n for n in (4, 8, 16, 32)}
        lines = [
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d}, {machine()}; `python bench/ray_scaling.py --lfw {args.lfw} "
            f"--composed {args.composed}`: {photos} photos ({args.lfw} LFW, {args.composed} composed 1920x1080).",
            "",
            "| run | wall s | start-up s (one photo) | photos/s | photos/s after start-up |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, r in rows.items():
            after = r["seconds"] - r["startup"]
            lines.append(f"| {name} | {r['seconds']:.1f} | {r['startup']:.1f} | {photos / r['seconds']:.2f} | "
                         f"{photos / max(after, 1e-9):.2f} |")
        lines += [
            "",
            f"Fit t(n) = s + p/n after start-up: s = {serial:.1f} s, p = {parallel:.1f} s "
            f"(the share that spreads over actors: {100 * parallel / max(t1, 1e-9):.0f} %). Predicted photos/s "
            "after start-up: " + ", ".join(f"{n} actors {photos / t:.1f}" for n, t in predicted.items()) + ".",
        ]
        print("\n".join(lines))
        if args.json:
            args.json.write_text(json.dumps({"date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
                                             "machine": machine(), "photos": photos, "runs": rows,
                                             "serial_s": serial, "parallel_s": parallel,
                                             "predicted_s": predicted}, indent=2))


if __name__ == "__main__":
    main()
