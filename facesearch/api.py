"""The public Python API: index folders, enroll people, name the faces in a photo, verify two photos, find a
person's photos, list and forget people, report the state of a home.

Every function takes a `Config` (see `facesearch.config.load_config`). Functions that need the models accept
a `detector` and an `extractor` (anything with `detect(images)`, resp. `embed(chips)`, `version` and `info`);
left out, the shipped ones are loaded once per process on first use. Distances are cosine distances
(`1 - a.b` of unit vectors, 0 for identical faces, up to 2); boxes are pixels of the photo as decoded.

This module only gathers the API; each part lives in a module of one concern:

- `facesearch.home`: opening a home (its gallery, its write lock, the errors about it) and the models;
- `facesearch.thresholds`: the thresholds in force (`verify`'s, and the one `who` names faces with);
- `facesearch.build`: `index`, `reindex`, `enroll`, `check`;
- `facesearch.answers`: `who`, `verify`, `search`, `people`, `forget`, `status`, and the values they return;
- `facesearch.export`: `export`; `facesearch.drawing`: `annotate`;
- `facesearch.organise`: clusters and corrections.
"""
from __future__ import annotations

from facesearch.answers import (
    UNKNOWN, FaceAnswer, Forgotten, PersonSummary, PhotoAnswer, Sighting, Status, Verdict, forget, people, person,
    search, status, stored_face_id, verify, who,
)
from facesearch.build import Checked, check, check_name, enroll, enroll_folders, index, reindex
from facesearch.drawing import annotate
from facesearch.export import EXPORT_FORMATS, Exported, export
from facesearch.home import LooseHomeWarning, load_detector, load_extractor
from facesearch.thresholds import OpenSetThreshold, naming_threshold, open_set_threshold, threshold_in_use
from indexer import CheckReport, EnrollReport, IndexReport, ReembedReport
from indexer.library import nearest_person

__all__ = [
    "EXPORT_FORMATS", "UNKNOWN", "CheckReport", "Checked", "EnrollReport", "Exported", "FaceAnswer", "Forgotten",
    "IndexReport", "LooseHomeWarning", "OpenSetThreshold", "PersonSummary", "PhotoAnswer", "ReembedReport",
    "Sighting", "Status", "Verdict", "annotate", "check", "check_name", "enroll", "enroll_folders", "export",
    "forget", "index", "load_detector", "load_extractor", "naming_threshold", "nearest_person", "open_set_threshold",
    "people", "person", "reindex", "search", "status", "stored_face_id", "threshold_in_use", "verify", "who",
]
