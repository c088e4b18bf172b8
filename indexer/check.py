"""Checking that the FAISS index and the photo files still agree with the database (the truth), and repairing
the index by rebuilding it from the database."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import faiss
from sqlalchemy import select

from db import FAILED, FaceRow, PhotoRow
from indexer.gallery import Gallery
from indexer.scan import hash_file
from indexer.vectors import Scale, Sidecar, describe, sidecar_path, stored_ids


@dataclass(frozen=True)
class CheckReport:
    """Where the index and the photo files drift from the database; `consistent` when nowhere."""

    index_path: Path
    index_problem: str | None  # the index file is missing, damaged, or of another model/type; None when readable
    missing_from_index: tuple[int, ...]  # face ids of the current model in the database but not in the index
    extra_in_index: tuple[int, ...]  # ids in the index that are no face of the current model in the database
    other_model_faces: int  # faces in the database with vectors of another model (`facesearch reindex`)
    gone: tuple[str, ...]  # paths of photos whose file is no longer there
    changed: tuple[tuple[str, str], ...]  # (path, how): a different size, or the same size with other bytes
    photos_checked: int

    @property
    def index_drift(self) -> bool:
        return self.index_problem is not None or bool(self.missing_from_index or self.extra_in_index)

    @property
    def consistent(self) -> bool:
        return not (self.index_drift or self.other_model_faces or self.gone or self.changed)


def read_saved_index(path: Path, model_version: str, dim: int,
                     scale: Scale | None = None) -> tuple[frozenset[int], str | None]:
    """The ids held by the index saved at `path`, and what is wrong with it (None when it is sound and of
    this model): missing, damaged or truncated, written for another model, or of another index type than
    its size calls for (`scale`, the engine's by default)."""
    if not path.exists():
        return frozenset(), f"{path} is missing"
    try:
        index = faiss.read_index(str(path))
    except (RuntimeError, OSError):
        return frozenset(), f"{path} is damaged or truncated (FAISS cannot read it)"
    try:
        ids = frozenset(stored_ids(index).tolist())
    except ValueError:
        ids = frozenset()
    try:
        sidecar = Sidecar(**json.loads(sidecar_path(path).read_text()))
    except (OSError, ValueError, TypeError) as e:
        return ids, f"{sidecar_path(path)}, the description of the index, is missing or damaged ({e})"
    if sidecar.model_version != model_version:
        return ids, f"{path} holds vectors of model {sidecar.model_version}, the current model is {model_version}"
    wanted = (scale or Scale()).index_type(index.ntotal)
    if index.d != dim or sidecar.dim != dim or describe(index) != sidecar.index_type or sidecar.index_type != wanted:
        return ids, (f"{path} holds {index.d}-d vectors in a {describe(index)} index, expected {dim}-d {wanted} "
                     f"for {index.ntotal} vectors")
    if index.ntotal != sidecar.count:
        return ids, f"{path} holds {index.ntotal} vectors but its description says {sidecar.count}"
    return ids, None


def check_gallery(gallery: Gallery, files: bool = True) -> CheckReport:
    """Compare the saved index and (with `files`) every photo file with the database.

    A photo file is changed when its size in bytes differs from the stored one, or when its modification time
    is later than the row's last update and its sha256 differs (so unchanged files are not read). Nothing is
    written; the index is read from disk as saved, never rebuilt here.
    """
    model = gallery.model
    with gallery.session() as s:
        current = set(s.scalars(select(FaceRow.id).where(FaceRow.model_version == model.version)))
        other = len(s.scalars(select(FaceRow.id).where(FaceRow.model_version != model.version)).all())
        photos = s.execute(select(PhotoRow.path, PhotoRow.size_bytes, PhotoRow.sha256, PhotoRow.updated_at)
                           .where(PhotoRow.status != FAILED).order_by(PhotoRow.path)).all()
    in_index, problem = read_saved_index(gallery.index_path, model.version, model.dim, gallery.scale)
    if problem is not None and not current and not gallery.index_path.exists():
        problem = None  # nothing to hold yet: an index that was never written is no drift
    gone: list[str] = []
    changed: list[tuple[str, str]] = []
    if files:
        for path, size, sha256, updated_at in photos:
            p = Path(path)
            try:
                st = p.stat()
            except OSError:
                gone.append(path)
                continue
            if not p.is_file():
                gone.append(path)
            elif st.st_size != size:
                changed.append((path, f"size {st.st_size} bytes, {size} when indexed"))
            elif st.st_mtime > _epoch_seconds(updated_at):
                try:
                    if hash_file(p)[0] != sha256:
                        changed.append((path, "same size, other bytes (sha256 differs)"))
                except OSError as e:
                    changed.append((path, f"cannot be read ({e.strerror or e})"))
    return CheckReport(
        gallery.index_path, problem,
        tuple(sorted(current - in_index)),
        tuple(sorted(in_index - current)), other, tuple(gone), tuple(changed), len(photos),
    )


def repair_index(gallery: Gallery) -> int:
    """Rebuild the index from the database's vectors of the current model and save it; returns its size."""
    index = gallery.rebuild_index()
    gallery.save_index()
    return index.count


def _epoch_seconds(moment) -> float:
    # SQLite hands back naive datetimes; they were written in UTC
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
