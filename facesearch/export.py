"""Writing a gallery out for other tools: people, photos and faces as CSV files and one JSON document.

Plain functions over rows (dicts); `facesearch.api.export` gathers the rows. Every file is written to a
temporary name beside its place and renamed into it, so an export killed midway leaves the earlier export's
files (or none), never half a file.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from models.files import write_atomic

PEOPLE_COLUMNS = ["person_id", "name", "enrolled_faces", "gallery_faces_named"]
PHOTO_COLUMNS = ["photo_id", "path", "sha256", "width", "height", "status", "error", "faces"]
FACE_COLUMNS = ["face_id", "photo_id", "path", "x0", "y0", "x1", "y1", "score", "kind", "name", "name_source",
                "distance", "model_version"]


def csv_text(columns: Sequence[str], rows: Sequence[dict]) -> str:
    """Rows as CSV with a header line; None becomes an empty cell, floats keep 4 decimals."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else round(row[c], 4) if isinstance(row[c], float) else row[c]
                         for c in columns])
    return out.getvalue()


def write_export(out_dir: Path, people: Sequence[dict], photos: Sequence[dict], faces: Sequence[dict],
                 about: dict, formats: Sequence[str] = ("csv", "json")) -> list[Path]:
    """Write people.csv, photos.csv and faces.csv and/or facesearch.json into `out_dir`; the paths written.

    The JSON document holds `about` (home, model, threshold, date), the people, and each photo with its
    faces inside it (landmarks included); the CSV files hold one row per person, photo and face."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if "csv" in formats:
        for name, columns, rows in (("people.csv", PEOPLE_COLUMNS, people), ("photos.csv", PHOTO_COLUMNS, photos),
                                    ("faces.csv", FACE_COLUMNS, faces)):
            write_atomic(out_dir / name, csv_text(columns, rows), private=True)
            written.append(out_dir / name)
    if "json" in formats:
        by_photo: dict[int, list[dict]] = {}
        for face in faces:
            by_photo.setdefault(face["photo_id"], []).append(
                {k: v for k, v in face.items() if k not in ("photo_id", "path")})
        document = {"about": about, "people": list(people),
                    "photos": [{**photo, "faces": by_photo.get(photo["photo_id"], [])} for photo in photos]}
        write_atomic(out_dir / "facesearch.json", json.dumps(document, indent=1, ensure_ascii=False) + "\n",
                         private=True)
        written.append(out_dir / "facesearch.json")
    return written
