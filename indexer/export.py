"""The rows of an export (`facesearch export`): every person, photo and face of a gallery, each face with the
name the naming rule gives it (`indexer/library.py`), as plain dicts; `facesearch/export.py` writes them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from db import INDEXED_FACE, FaceRow, PersonRow, PhotoRow
from indexer.gallery import Gallery
from indexer.library import match_people
from indexer.vectors import from_bytes


@dataclass(frozen=True)
class ExportRows:
    people: list[dict]
    photos: list[dict]
    faces: list[dict]
    named_by_match: int  # gallery faces named after the enrolled person nearest to them, under the threshold


def export_rows(gallery: Gallery, threshold: float, k: int, person_of: dict[int, str] | None = None) -> ExportRows:
    """A face's name is its person's when it has one (an enrolled face, or a gallery face assigned to someone);
    otherwise, for a gallery face of the gallery's current extractor, the name `who` would give it: the enrolled
    person nearest to it when nearer than `threshold` (`name_source` says which, `distance` how near). Faces of
    another extractor get no name by match. `person_of` as `match_people` takes it, when the caller has it."""
    version, dim = gallery.model.version, gallery.model.dim
    with gallery.session() as s:
        names = dict(s.execute(select(PersonRow.id, PersonRow.name).order_by(PersonRow.name)).all())
        photos = [{"photo_id": p.id, "path": p.path, "sha256": p.sha256, "width": p.width, "height": p.height,
                   "status": p.status, "error": p.error}
                  for p in s.scalars(select(PhotoRow).order_by(PhotoRow.id))]
        rows = s.execute(select(FaceRow.id, FaceRow.photo_id, PhotoRow.path, FaceRow.x0, FaceRow.y0, FaceRow.x1,
                                FaceRow.y1, FaceRow.landmarks, FaceRow.score, FaceRow.kind, FaceRow.person_id,
                                FaceRow.model_version, FaceRow.vector)
                         .join(PhotoRow, PhotoRow.id == FaceRow.photo_id).order_by(FaceRow.id)).all()
    faces, to_match = [], []
    for r in rows:
        face = {"face_id": r.id, "photo_id": r.photo_id, "path": r.path, "x0": r.x0, "y0": r.y0, "x1": r.x1,
                "y1": r.y1, "landmarks": r.landmarks, "score": r.score, "kind": r.kind, "name": names.get(r.person_id),
                "name_source": None, "distance": None, "model_version": r.model_version}
        if face["name"] is not None:
            face["name_source"] = "enrolled" if r.kind != INDEXED_FACE else "assigned"
        elif r.model_version == version:
            to_match.append((len(faces), from_bytes(r.vector, dim)))
        faces.append(face)
    matched = 0
    if to_match:
        ids = [faces[slot]["face_id"] for slot, _ in to_match]
        found = match_people(gallery, np.stack([v for _, v in to_match]), threshold, k, ids, person_of)
        for (slot, _), m in zip(to_match, found):
            if m.name is not None:
                faces[slot].update(name=m.name, name_source="match", distance=m.distance)
                matched += 1
    per_photo = Counter(f["photo_id"] for f in faces)
    for photo in photos:
        photo["faces"] = per_photo[photo["photo_id"]]
    named = Counter(f["name"] for f in faces if f["kind"] == INDEXED_FACE and f["name"] is not None)
    enrolled = Counter(f["name"] for f in faces if f["kind"] != INDEXED_FACE and f["name"] is not None)
    people = [{"person_id": pid, "name": name, "enrolled_faces": enrolled.get(name, 0),
               "gallery_faces_named": named.get(name, 0)} for pid, name in names.items()]
    return ExportRows(people, photos, faces, matched)
