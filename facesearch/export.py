"""Writing a gallery out for other tools: people, photos and faces as CSV files and one JSON document.

`export` gathers the rows (`indexer.export.export_rows`) and writes them with the plain functions below. Every
file is written to a temporary name beside its place and renamed into it, so an export killed midway leaves the
earlier export's files (or none), never half a file.
"""
from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facesearch import home, thresholds
from facesearch.config import Config
from facesearch.errors import BadOutputPath
from indexer.export import export_rows
from indexer.pipeline import FaceExtractor
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


@dataclass(frozen=True)
class Exported:
    """What `export` wrote."""

    paths: tuple[Path, ...]
    people: int
    photos: int
    faces: int
    named_by_match: int  # gallery faces named after the enrolled person nearest to them, under the threshold


EXPORT_FORMATS = ("csv", "json")


def export(out_dir: str | Path, config: Config, *, formats: Sequence[str] = EXPORT_FORMATS,
           extractor: FaceExtractor | None = None) -> Exported:
    """Write every person, photo and face of the home into `out_dir` as CSV files and/or one JSON document
    (`write_export` lists the columns), each face named as `who` would name it (`indexer.export.export_rows`).
    Faces of another extractor than the current one get no name by match (run `facesearch reindex` first)."""
    unknown = set(formats) - set(EXPORT_FORMATS)
    if unknown or not formats:
        raise BadOutputPath(f"export formats are csv and json, not {', '.join(sorted(unknown)) or 'none'}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadOutputPath(f"{out}: exists and is not a folder; export writes several files into a folder")
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        person_of = gallery.person_faces()
        naming = thresholds.naming_threshold_for(config, extractor, gallery, person_of)
        rows = export_rows(gallery, naming.threshold, config.k, person_of)
    about = {"home": str(config.home), "model_version": extractor.version, "threshold": naming.threshold,
             "threshold_means": naming.describe(),
             "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "distance": "cosine distance 1 - a.b"}
    paths = write_export(out, rows.people, rows.photos, rows.faces, about, formats)
    return Exported(tuple(paths), len(rows.people), len(rows.photos), len(rows.faces), rows.named_by_match)
