"""How the shipped thresholds behave in `who` on LFW people: named right, named wrong, strangers named.

    python scripts/threshold_check.py

Enrolls five LFW people (their first four photos each), then asks `who` about ten other photos of each
(photos 15-24) and one photo each of 30 people with three LFW photos (never enrolled), at the model's
FAR 1e-2 and FAR 1e-3 thresholds, and at the threshold `who` chooses itself for 1 % of strangers named
(docs/library.md, "Strangers"). The same people and photos as tests/test_end_to_end.py.
"""
from __future__ import annotations

import csv
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser  # noqa: E402

from facesearch import api  # noqa: E402
from facesearch.config import load_config  # noqa: E402
from models.extractor import DEFAULT_MODEL  # noqa: E402

ENROLLED = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]


def main() -> None:
    args = parser(__doc__).parse_args()
    images = Path(args.data) / "lfw" / "images"
    photos = {name: sorted((images / name).glob("*.jpg")) for name in ENROLLED}
    with open(Path(args.data) / "lfw" / "people.csv", newline="") as f:
        threes = sorted(r["name"] for r in csv.DictReader(f) if int(r["images"]) == 3)
    strangers = [sorted((images / n).glob("*.jpg"))[0] for n in threes[::len(threes) // 30][:30]]
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    with tempfile.TemporaryDirectory() as home:
        config = load_config(home=home)
        for name in ENROLLED:
            api.enroll(name, photos[name][:4], config)
        held_out = {str(p): name for name in ENROLLED for p in photos[name][14:24]}
        print(f"model {meta['version']}: {len(held_out)} held-out photos of 5 enrolled people, 30 strangers")
        print("| threshold | named right | named as another enrolled person | strangers named |")
        print("| --- | --- | --- | --- |")
        own = api.naming_threshold(config)
        rows = [("FAR 1e-2", meta["threshold_far_1e_2"]), ("FAR 1e-3", meta["threshold_far_1e_3"]),
                (f"who's own: 1 % of strangers, {own.references} reference faces", None)]
        for label, t in rows:
            cfg = config if t is None else replace(config, threshold=t)
            t = own.threshold if t is None else t
            right = wrong = 0
            for answer in api.who(list(held_out), cfg):
                face = _main(answer)
                truth = held_out[str(answer.photo)]
                right += face is not None and face.name == truth
                wrong += face is not None and face.name not in (truth, api.UNKNOWN)
            named = sum(1 for a in api.who(strangers, cfg) if (f := _main(a)) is not None and f.name != api.UNKNOWN)
            print(f"| {label} ({t:.4f}) | {right} of {len(held_out)} | {wrong} | {named} of {len(strangers)} |")


def _main(answer):
    """The face an LFW photo is labelled for: the largest, weighed by nearness to the centre."""
    if not answer.faces:
        return None

    def weight(f):
        b = f.box
        off = (((b.x0 + b.x1) / 2 - 80) ** 2 + ((b.y0 + b.y1) / 2 - 80) ** 2) ** 0.5 / 160
        return b.width * b.height * (1 - off)

    return max(answer.faces, key=weight)


if __name__ == "__main__":
    main()
