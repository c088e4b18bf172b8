"""Organising a gallery: naming faces by the people they match, clustering the faces no one has named, and the
corrections users make (a face moved to a person, a face that is not a person, two people merged).

A person is a set of reference faces: their enrolled faces, and the gallery faces given to them (by naming a
cluster, or by moving a face). Every write here is one transaction; none changes a vector, so the FAISS index
is left as it is.

The naming rule, the one way a face gets a name, used by `who`, `search`, `people` and `export` alike
(`match_people`; `faces_named` lists the faces it gives one name):

1. A face that has a person (an enrolled face, or a gallery face given to someone) is that person's.
2. Any other face is named after the person who owns its nearest reference face, when that face is nearer than
   the threshold in force, passing over the people the face was rejected for (`facesearch reject`, or a
   `move` away from them).
3. Otherwise it is no one's (`unknown`).

So a face is under at most one name, and `search NAME` lists exactly the faces `who` and `export` call NAME.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from db import (
    INDEXED_FACE, ClusterFaceRow, ClusterRow, FaceRow, PersonRow, PhotoRow, RejectionRow,
)
from indexer.errors import LibraryError
from indexer.gallery import Gallery, person_row
from indexer.vectors import from_bytes
from models.clustering import cluster_vectors, join_clusters
from models.distance import cosine_distances

_IN_CHUNK = 500  # ids per IN (...) clause


@dataclass(frozen=True)
class Match:
    """Who a face is, as `who` answers it."""

    name: str | None  # the person nearer than the threshold, or None
    distance: float | None  # to the nearest person's nearest face; None when no one was in reach
    nearest: str | None  # that nearest person, even when beyond the threshold


@dataclass(frozen=True)
class ClusterReport:
    """What one `cluster_faces` run did."""

    joined: int  # faces that joined an existing cluster
    new_clusters: int
    in_new_clusters: int  # faces in the new clusters
    unclustered: int  # unnamed faces left in no cluster (groups smaller than the minimum size)
    matched: int  # unnamed faces left alone because they match a person (who names them)
    clusters: int  # clusters after the run


@dataclass(frozen=True)
class ClusterSummary:
    id: int
    size: int
    face_ids: tuple[int, ...]  # members, the most typical first (nearest the cluster's mean)
    photos: tuple[str, ...]  # the members' photos in the same order, each once


@dataclass(frozen=True)
class Named:
    """What naming a cluster, moving faces or merging people did."""

    name: str
    faces: int  # faces that now belong to `name`
    created: bool  # whether `name` is a new person
    skipped: tuple[int, ...] = ()  # face ids left out because they were rejected for `name`


def nearest_person(distances: np.ndarray, ids: np.ndarray, person_of: dict[int, str],
                   excluded: frozenset[str] | set[str] = frozenset()) -> tuple[str | None, float | None]:
    """The person with the nearest face among search hits (ids -1 are no hit), and that distance.

    Hits are grouped by person and each person scored by their best (smallest) distance; people in
    `excluded` (those the face was rejected for) are passed over.
    """
    best: dict[str, float] = {}
    for d, i in zip(distances.tolist(), ids.tolist()):
        name = person_of.get(int(i))
        if name is not None and name not in excluded and d < best.get(name, np.inf):
            best[name] = d
    if not best:
        return None, None
    name = min(best, key=best.__getitem__)
    return name, float(best[name])


def rejections(gallery: Gallery, face_ids: Iterable[int]) -> dict[int, set[str]]:
    """The names each of these faces was rejected for (faces without rejections are left out)."""
    ids = sorted({int(i) for i in face_ids if i is not None and int(i) >= 0})
    out: dict[int, set[str]] = {}
    with gallery.session() as s:
        for start in range(0, len(ids), _IN_CHUNK):
            query = (select(RejectionRow.face_id, PersonRow.name)
                     .join(PersonRow, PersonRow.id == RejectionRow.person_id)
                     .where(RejectionRow.face_id.in_(ids[start:start + _IN_CHUNK])))
            for face_id, name in s.execute(query):
                out.setdefault(face_id, set()).add(name)
    return out


def match_people(gallery: Gallery, vectors: np.ndarray, threshold: float, k: int,
                 face_ids: Sequence[int | None] | None = None,
                 person_of: dict[int, str] | None = None) -> list[Match]:
    """The naming rule (module docstring) for each vector: the person of a stored face that has one, else the
    person whose reference face is nearest, when nearer than `threshold`.

    `face_ids` are the stored faces the vectors belong to (None for a face that is not stored, e.g. in a
    photo that is not indexed): a stored face with a person is that person's (distance 0), and is never named
    after a person it was rejected for. `person_of` (face id -> name of every reference face) may be passed
    when the caller has it already.
    """
    person_of = gallery.person_faces() if person_of is None else person_of
    vectors = np.asarray(vectors, np.float32).reshape(-1, gallery.model.dim)
    if not person_of or len(vectors) == 0:
        return [Match(None, None, None) for _ in range(len(vectors))]
    rejected = rejections(gallery, face_ids or [])
    among = np.fromiter(person_of, np.int64)
    extra = max((len(r) for r in rejected.values()), default=0)  # room for hits of rejected people
    k = min(k + extra, len(among))
    matches: list[Match] = []
    for start in range(0, len(vectors), 1024):
        distances, ids = gallery.index.search(vectors[start:start + 1024], k, among=among)
        for row, (d, i) in enumerate(zip(distances, ids)):
            face_id = face_ids[start + row] if face_ids is not None else None
            if face_id is not None and face_id in person_of:  # rule 1: a face with a person is theirs
                matches.append(Match(person_of[face_id], 0.0, person_of[face_id]))
                continue
            nearest, distance = nearest_person(d, i, person_of, rejected.get(face_id, set()))
            name = nearest if distance is not None and distance < threshold else None
            matches.append(Match(name, distance, nearest))
    return matches


def faces_named(gallery: Gallery, name: str, threshold: float, k: int,
                person_of: dict[int, str] | None = None) -> dict[int, float]:
    """Every gallery face (not enrolled) that the naming rule names `name`, with its distance (0 for a face
    given to them).

    The candidates are the faces nearer than `threshold` to one of `name`'s reference faces (no other face
    can be named after them); each is then named by `match_people`, as `who` would name it, and kept when the
    name is `name`: a candidate nearer to someone else's reference face is theirs, not `name`'s."""
    person_of = gallery.person_faces() if person_of is None else person_of
    _, references = gallery.vectors_of(name)
    if len(references) == 0:
        return {}
    near: set[int] = set()
    for ids, _ in gallery.index.within(references, threshold):
        near.update(ids.tolist())
    stored = gallery.faces(near)
    candidates = np.array(sorted(i for i, f in stored.items() if f.kind == INDEXED_FACE), np.int64)
    ids, vectors = gallery.stored_vectors(candidates)
    if len(ids) == 0:
        return {}
    matches = match_people(gallery, vectors, threshold, k, ids.tolist(), person_of)
    return {int(i): float(m.distance) for i, m in zip(ids, matches) if m.name == name}


def enrolment_doubts(gallery: Gallery, name: str, vectors: np.ndarray, threshold: float, k: int) -> list[str]:
    """Why each of these new faces of `name` may not be `name` ("" where nothing is in doubt), for `enroll`.

    A face is in doubt when the nearest of `name`'s other faces (their reference faces already stored, and the
    other new faces) is at `threshold` or farther, or when another person's reference face is nearer to it
    than any face of `name`; with no other face of `name` to compare with, when another person's face is
    nearer than `threshold`. `threshold` is the verification threshold: the distance under which two faces
    are taken for one person."""
    vectors = np.asarray(vectors, np.float32).reshape(-1, gallery.model.dim)
    if len(vectors) == 0:
        return []
    _, own = gallery.vectors_of(name)
    person_of = {i: n for i, n in gallery.person_faces().items() if n != name}
    others = [(m.nearest, m.distance) for m in match_people(gallery, vectors, threshold, k, person_of=person_of)]
    doubts = []
    for j, v in enumerate(vectors):
        mates = np.concatenate([own, np.delete(vectors, j, axis=0)])
        d_own = float(cosine_distances(v[None], mates).min()) if len(mates) else None
        other, d_other = others[j]
        if d_other is not None and d_own is not None and d_other < d_own:
            doubts.append(f"nearer to {other}'s faces ({d_other:.3f}) than to {name}'s other faces ({d_own:.3f})")
        elif d_own is not None and d_own >= threshold:
            doubts.append(f"{d_own:.3f} from the nearest of {name}'s other faces, beyond the threshold "
                          f"{threshold:.3f} under which two faces are taken for one person")
        elif d_own is None and d_other is not None and d_other < threshold:
            doubts.append(f"{d_other:.3f} from {other}'s faces, under the threshold {threshold:.3f}: "
                          f"{other} under another name?")
        else:
            doubts.append("")
    return doubts


# -- clusters ----------------------------------------------------------------------------------------------------


def _unnamed_faces(s: Session, gallery: Gallery) -> tuple[np.ndarray, np.ndarray]:
    """Ids and vectors of the gallery faces (current model) that have no person and are in no cluster."""
    in_cluster = select(ClusterFaceRow.face_id).where(ClusterFaceRow.face_id == FaceRow.id).exists()
    query = (select(FaceRow.id, FaceRow.vector)
             .where(FaceRow.kind == INDEXED_FACE, FaceRow.person_id.is_(None),
                    FaceRow.model_version == gallery.model.version, ~in_cluster)
             .order_by(FaceRow.id))
    return _ids_and_vectors(s.execute(query).all(), gallery.model.dim)


def _cluster_members(s: Session, gallery: Gallery) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Cluster id -> (face ids, vectors) of its members under the current model."""
    query = (select(ClusterFaceRow.cluster_id, FaceRow.id, FaceRow.vector)
             .join(FaceRow, FaceRow.id == ClusterFaceRow.face_id)
             .where(FaceRow.model_version == gallery.model.version)
             .order_by(ClusterFaceRow.cluster_id, FaceRow.id))
    rows: dict[int, list] = {}
    for cluster_id, face_id, vector in s.execute(query):
        rows.setdefault(cluster_id, []).append((face_id, vector))
    return {c: _ids_and_vectors(members, gallery.model.dim) for c, members in rows.items()}


def _ids_and_vectors(rows, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return (np.array([r[0] for r in rows], np.int64), np.stack([from_bytes(r[1], dim) for r in rows]))


def cluster_faces(gallery: Gallery, threshold: float, k: int, min_size: int = 2) -> ClusterReport:
    """Group the gallery faces that no one has named into clusters, incrementally.

    Considered: gallery faces of the current model with no person, in no cluster, and not named by
    `match_people` (those are already somebody). Each joins the existing cluster whose members are nearest on
    average, when that mean cosine distance is under `threshold`; the rest are clustered among themselves by
    average linkage at the same threshold (`models.clustering`), and each group of at least `min_size` faces
    becomes a new cluster. Existing clusters keep their ids and members, and people are never touched, so a
    rerun changes nothing that is already grouped or named.
    """
    person_of = gallery.person_faces()
    with gallery.session() as s:
        ids, vectors = _unnamed_faces(s, gallery)
        members = _cluster_members(s, gallery)
    matched = 0
    if len(ids) and person_of:
        named = np.array([m.name is not None for m in
                          match_people(gallery, vectors, threshold, k, ids.tolist(), person_of)], bool)
        matched = int(named.sum())
        ids, vectors = ids[~named], vectors[~named]
    cluster_ids = np.array(sorted(members), np.int64)
    sums = (np.stack([members[c][1].sum(axis=0) for c in cluster_ids]) if len(cluster_ids)
            else np.zeros((0, gallery.model.dim), np.float32))
    sizes = np.array([len(members[c][0]) for c in cluster_ids], np.int64)
    joins = join_clusters(vectors, sums, sizes, threshold)
    joined = [(int(f), int(cluster_ids[j])) for f, j in zip(ids, joins) if j >= 0]
    rest = joins < 0
    labels = cluster_vectors(vectors[rest], threshold, min_size)
    groups = [ids[rest][labels == g].tolist() for g in range(int(labels.max(initial=-1)) + 1)]
    with gallery.session() as s, s.begin():
        if joined:
            s.execute(insert(ClusterFaceRow), [{"face_id": f, "cluster_id": c} for f, c in joined])
        for group in groups:
            cluster = ClusterRow()
            s.add(cluster)
            s.flush()
            s.execute(insert(ClusterFaceRow), [{"face_id": f, "cluster_id": cluster.id} for f in group])
        total = s.scalar(select(func.count(ClusterRow.id)))
    return ClusterReport(joined=len(joined), new_clusters=len(groups), in_new_clusters=sum(map(len, groups)),
                         unclustered=int((labels < 0).sum()), matched=matched, clusters=int(total))


def list_clusters(gallery: Gallery) -> list[ClusterSummary]:
    """Every cluster, largest first (then oldest), its members ordered from the most typical."""
    with gallery.session() as s:
        members = _cluster_members(s, gallery)
        paths = dict(s.execute(select(FaceRow.id, PhotoRow.path).join(PhotoRow, PhotoRow.id == FaceRow.photo_id)
                               .join(ClusterFaceRow, ClusterFaceRow.face_id == FaceRow.id)).all())
    out = []
    for cluster_id, (ids, vectors) in members.items():
        mean = vectors.mean(axis=0)
        order = np.argsort(-(vectors @ mean), kind="stable")
        face_ids = tuple(int(i) for i in ids[order])
        photos = tuple(dict.fromkeys(paths[i] for i in face_ids))
        out.append(ClusterSummary(cluster_id, len(face_ids), face_ids, photos))
    return sorted(out, key=lambda c: (-c.size, c.id))


def _rejected_for(s: Session, person_id: int, face_ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(face_ids), _IN_CHUNK):
        found.update(s.scalars(select(RejectionRow.face_id).where(
            RejectionRow.person_id == person_id, RejectionRow.face_id.in_(face_ids[start:start + _IN_CHUNK]))))
    return found


def name_cluster(gallery: Gallery, cluster_id: int, name: str) -> Named:
    """Give every face of a cluster to `name` (a new person, or added to an existing one) and drop the cluster.
    Faces rejected for `name` stay unnamed (and may join another cluster on the next `cluster_faces`)."""
    with gallery.session() as s, s.begin():
        if s.get(ClusterRow, cluster_id) is None:
            raise LibraryError(f"there is no cluster {cluster_id}: facesearch clusters lists them "
                               "(run facesearch cluster first to form them)")
        face_ids = list(s.scalars(select(ClusterFaceRow.face_id).where(ClusterFaceRow.cluster_id == cluster_id)))
        person, created = person_row(s, name, create=True)
        skipped = _rejected_for(s, person.id, face_ids)
        given = [f for f in face_ids if f not in skipped]
        for start in range(0, len(given), _IN_CHUNK):
            s.execute(update(FaceRow).where(FaceRow.id.in_(given[start:start + _IN_CHUNK])).values(person_id=person.id))
        s.execute(delete(ClusterFaceRow).where(ClusterFaceRow.cluster_id == cluster_id))
        s.execute(delete(ClusterRow).where(ClusterRow.id == cluster_id))
    return Named(name, len(given), created, tuple(sorted(skipped)))


def _faces_or_fail(s: Session, face_ids: Sequence[int]) -> list[FaceRow]:
    rows = {r.id: r for r in s.scalars(select(FaceRow).where(FaceRow.id.in_(list(face_ids))))}
    missing = [i for i in face_ids if i not in rows]
    if missing:
        raise LibraryError(f"no face with id {', '.join(map(str, missing))}: face ids are in the output of "
                           "`who --json`, `search --json`, `clusters --json` and `export`")
    return [rows[i] for i in face_ids]


def move_faces(gallery: Gallery, face_ids: Sequence[int], name: str | None) -> Named:
    """Give these faces to `name` (created if new), or, with None, to no one. Each face leaves its cluster,
    and the person it belonged to before is remembered as a person it is not (so that it is never named
    after them again by a match); a rejection of the face for `name` is withdrawn. An enrolled face given to
    no one stays stored (with its photo) but is no one's reference face any more: the way to undo a wrong
    enrolment without forgetting the person; giving it to someone makes it theirs again."""
    face_ids = list(dict.fromkeys(int(i) for i in face_ids))
    with gallery.session() as s, s.begin():
        rows = _faces_or_fail(s, face_ids)
        person, created = person_row(s, name, create=True) if name is not None else (None, False)
        target = person.id if person is not None else None
        moved = 0
        for r in rows:
            if r.person_id is not None and r.person_id != target:
                _reject(s, r.id, r.person_id)
            if r.person_id != target:
                moved += 1
            r.person_id = target
            if target is not None:
                s.execute(delete(RejectionRow).where(RejectionRow.face_id == r.id, RejectionRow.person_id == target))
        s.execute(delete(ClusterFaceRow).where(ClusterFaceRow.face_id.in_(face_ids)))
        _drop_empty_clusters(s)
    return Named(name or "", moved, created)


def reject_faces(gallery: Gallery, face_ids: Sequence[int], name: str) -> int:
    """Record that these faces are not `name`; a face given to `name`, or enrolled as `name`, is taken from
    them (an enrolled face stays stored, no one's reference, until it is moved to the right person). Returns
    how many rejections are new."""
    face_ids = list(dict.fromkeys(int(i) for i in face_ids))
    with gallery.session() as s, s.begin():
        rows = _faces_or_fail(s, face_ids)
        person, _ = person_row(s, name, create=False)
        if person is None:
            raise LibraryError(f"no one named {name!r} is enrolled or named: facesearch people lists everyone")
        new = 0
        for r in rows:
            if r.person_id == person.id:
                r.person_id = None
            new += _reject(s, r.id, person.id)
    return new


def merge_people(gallery: Gallery, sources: Sequence[str], target: str) -> Named:
    """Make the people `sources` one with `target` (created if new, so merging one person into a new name
    renames them): their faces and rejections go to `target`, and they are removed. Rejections of their
    faces for `target` are withdrawn, and so are their rejections of `target`'s own faces, since the user
    has just said these people are one."""
    sources = [n for n in dict.fromkeys(sources) if n != target]
    with gallery.session() as s, s.begin():
        rows = []
        for n in sources:
            person, _ = person_row(s, n, create=False)
            if person is None:
                raise LibraryError(f"no one named {n!r} is enrolled or named: facesearch people lists everyone")
            rows.append(person)
        person, created = person_row(s, target, create=True)
        old = [p.id for p in rows]
        face_ids = list(s.scalars(select(FaceRow.id).where(FaceRow.person_id.in_(old))))
        s.execute(update(FaceRow).where(FaceRow.person_id.in_(old)).values(person_id=person.id))
        theirs = set(s.scalars(select(FaceRow.id).where(FaceRow.person_id == person.id)))
        s.execute(delete(RejectionRow).where(RejectionRow.person_id == person.id,
                                             RejectionRow.face_id.in_(face_ids)))
        for face_id in s.scalars(select(RejectionRow.face_id).where(RejectionRow.person_id.in_(old))).all():
            if face_id not in theirs:  # a face of `target` is no longer "not one of the merged people"
                _reject(s, face_id, person.id)
        s.execute(delete(RejectionRow).where(RejectionRow.person_id.in_(old)))
        s.execute(delete(PersonRow).where(PersonRow.id.in_(old)))
    return Named(target, len(face_ids), created)


def _reject(s: Session, face_id: int, person_id: int) -> int:
    """Record that a face is not a person, once; 1 when it is new."""
    if s.get(RejectionRow, (face_id, person_id)) is not None:
        return 0
    s.add(RejectionRow(face_id=face_id, person_id=person_id))
    s.flush()
    return 1


def _drop_empty_clusters(s: Session) -> None:
    s.execute(delete(ClusterRow).where(~select(ClusterFaceRow.face_id)
                                       .where(ClusterFaceRow.cluster_id == ClusterRow.id).exists()))
