"""Clusters of unnamed faces and corrections that stick, on seeded synthetic vectors (no photos, no networks).

Three made-up people, each a random direction in 32 dimensions; a face of a person is its direction plus a
little noise (faces of one person are about 0.05 apart in cosine distance, of two people about 1). The
threshold is 0.4. Every test runs on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from db import ClusterRow, RejectionRow
from fakes import enroll_photo, stored_photo
from indexer import BatchWrite, EmbeddedFace, Gallery, Photo
from indexer.library import (
    LibraryError, cluster_faces, list_clusters, match_people, merge_people, move_faces, name_cluster, reject_faces,
)
from models.extractor import ModelInfo
from models.faces import Box, Face

DIM = 32
THRESHOLD = 0.4
MODEL = ModelInfo(version="synthetic-library", dim=DIM, threshold=THRESHOLD, threshold_far=0.001)
CENTRES = np.random.default_rng(7).standard_normal((3, DIM)).astype(np.float32)
ANN, BOB, CY = 0, 1, 2


def vector(person: int, seed: int) -> np.ndarray:
    v = CENTRES[person] + 0.25 * np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def embedded(person: int, seed: int) -> EmbeddedFace:
    landmarks = np.array([[15, 20], [25, 20], [20, 25], [16, 30], [24, 30]], np.float32)
    return EmbeddedFace(Face(Box(10, 10, 30, 35), landmarks, 0.99), vector(person, seed))


def photos(person: int, seeds: range) -> list[Photo]:
    """One photo with one face of `person` per seed."""
    return [stored_photo(f"{person}-{s}".rjust(64, "0"), f"/photos/{person}-{s}.jpg", 1000, 160, 160,
                         (embedded(person, s),)) for s in seeds]


@pytest.fixture
def gallery(tmp_path, database_url):
    with Gallery.open(database_url, tmp_path / "faces.faiss", MODEL) as g:
        yield g


def face_ids_of(g: Gallery, person: int) -> list[int]:
    """Ids of the gallery faces written for `person` (by their photo paths)."""
    return sorted(f.id for f in g.faces(range(1, 10_000)).values() if f.photo_path.startswith(f"/photos/{person}-"))


def test_same_person_vectors_are_near_and_others_far():
    same = 1 - vector(ANN, 1) @ vector(ANN, 2)
    other = 1 - vector(ANN, 1) @ vector(BOB, 1)
    assert same < 0.15 and other > 0.7  # the geometry every test below relies on


def test_unnamed_faces_are_grouped_by_person_and_a_rerun_changes_nothing(gallery):
    gallery.write(BatchWrite(photos=photos(ANN, range(5)) + photos(BOB, range(4)) + photos(CY, range(1))))
    report = cluster_faces(gallery, THRESHOLD, k=10, min_size=2)
    assert (report.new_clusters, report.in_new_clusters, report.unclustered, report.joined) == (2, 9, 1, 0)
    found = list_clusters(gallery)
    assert [c.size for c in found] == [5, 4]  # largest first
    assert sorted(found[0].face_ids) == face_ids_of(gallery, ANN)
    assert sorted(found[1].face_ids) == face_ids_of(gallery, BOB)
    assert len(found[0].photos) == 5

    again = cluster_faces(gallery, THRESHOLD, k=10, min_size=2)
    assert (again.new_clusters, again.joined, again.clusters) == (0, 0, 2)
    assert list_clusters(gallery) == found


def test_new_faces_join_existing_clusters_which_keep_their_numbers(gallery):
    gallery.write(BatchWrite(photos=photos(ANN, range(3)) + photos(BOB, range(3))))
    cluster_faces(gallery, THRESHOLD, k=10)
    before = {c.id: set(c.face_ids) for c in list_clusters(gallery)}
    gallery.write(BatchWrite(photos=photos(ANN, range(10, 12)) + photos(CY, range(2))))
    report = cluster_faces(gallery, THRESHOLD, k=10)
    assert (report.joined, report.new_clusters, report.in_new_clusters) == (2, 1, 2)
    after = {c.id: set(c.face_ids) for c in list_clusters(gallery)}
    assert set(before) < set(after)  # the old numbers are still there, one more
    ann = next(i for i, faces in before.items() if faces <= set(face_ids_of(gallery, ANN)))
    assert after[ann] == set(face_ids_of(gallery, ANN))  # Ann's new faces joined her cluster
    bob = next(i for i in before if i != ann)
    assert after[bob] == before[bob]


def test_a_small_group_waits_for_the_minimum_size(gallery):
    gallery.write(BatchWrite(photos=photos(CY, range(2))))
    assert cluster_faces(gallery, THRESHOLD, k=10, min_size=3).new_clusters == 0
    gallery.write(BatchWrite(photos=photos(CY, range(2, 3))))
    report = cluster_faces(gallery, THRESHOLD, k=10, min_size=3)
    assert (report.new_clusters, report.in_new_clusters) == (1, 3)


def test_a_named_cluster_becomes_a_person_who_is_then_matched_and_not_clustered_again(gallery):
    gallery.write(BatchWrite(photos=photos(ANN, range(4))))
    cluster_faces(gallery, THRESHOLD, k=10)
    (ann,) = list_clusters(gallery)
    named = name_cluster(gallery, ann.id, "Ann")
    assert (named.faces, named.created, named.skipped) == (4, True, ())
    assert list_clusters(gallery) == []
    assert [(p.name, p.enrolled_faces, p.given_faces) for p in gallery.people()] == [("Ann", 0, 4)]

    (match,) = match_people(gallery, vector(ANN, 99)[None], THRESHOLD, k=10)  # a new photo of her
    assert match.name == "Ann" and match.distance < 0.2
    (stranger,) = match_people(gallery, vector(BOB, 99)[None], THRESHOLD, k=10)
    assert stranger.name is None and stranger.nearest == "Ann"

    gallery.write(BatchWrite(photos=photos(ANN, range(20, 23))))
    report = cluster_faces(gallery, THRESHOLD, k=10)
    assert (report.matched, report.new_clusters) == (3, 0)  # who names them already: no cluster for them

    with pytest.raises(LibraryError, match="no cluster 999"):
        name_cluster(gallery, 999, "Ann")


def test_a_face_marked_not_a_person_is_never_named_after_them(gallery):
    gallery.write(BatchWrite(photos=photos(ANN, range(4))))
    cluster_faces(gallery, THRESHOLD, k=10)
    name_cluster(gallery, list_clusters(gallery)[0].id, "Ann")
    gallery.write(BatchWrite(photos=photos(ANN, range(30, 32))))
    new = [i for i in face_ids_of(gallery, ANN) if i not in gallery.person_faces()]
    assert len(new) == 2

    assert reject_faces(gallery, new, "Ann") == 2
    assert reject_faces(gallery, new, "Ann") == 0  # stored once
    vectors = np.stack([gallery.index.vector(i) for i in new])
    with_ids = match_people(gallery, vectors, THRESHOLD, k=10, face_ids=new)
    assert [m.name for m in with_ids] == [None, None]  # the stored faces: corrected
    assert [m.name for m in match_people(gallery, vectors, THRESHOLD, k=10)] == ["Ann", "Ann"]  # a new photo: not

    report = cluster_faces(gallery, THRESHOLD, k=10)  # no longer matched, so clustered
    assert (report.matched, report.new_clusters, report.in_new_clusters) == (0, 1, 2)
    named = name_cluster(gallery, list_clusters(gallery)[0].id, "Ann")
    assert (named.faces, named.skipped) == (0, tuple(new))  # naming the cluster Ann does not override it

    given = face_ids_of(gallery, ANN)[0]
    reject_faces(gallery, [given], "Ann")  # a face given to Ann is taken back
    assert given not in gallery.person_faces()
    with pytest.raises(LibraryError, match="no one named 'Zed'"):
        reject_faces(gallery, new, "Zed")
    with pytest.raises(LibraryError, match="no face with id 999999"):
        reject_faces(gallery, [999999], "Ann")


def test_moving_faces_between_people_sticks(gallery):
    gallery.write(BatchWrite(photos=photos(ANN, range(4)) + photos(BOB, range(3))))
    cluster_faces(gallery, THRESHOLD, k=10)
    ann_cluster, bob_cluster = list_clusters(gallery)
    name_cluster(gallery, ann_cluster.id, "Ann")
    wrong = face_ids_of(gallery, ANN)[0]

    moved = move_faces(gallery, [wrong], "Bob")  # the user says it is Bob, who has no faces yet
    assert (moved.faces, moved.created) == (1, True)
    assert gallery.person_faces()[wrong] == "Bob"
    (match,) = match_people(gallery, gallery.index.vector(wrong)[None], THRESHOLD, k=10, face_ids=[wrong])
    assert match.name == "Bob" and match.distance < 1e-5  # its own vector is now one of Bob's references

    move_faces(gallery, [wrong], None)  # to no one: it is still not Ann (remembered when it left her)
    (match,) = match_people(gallery, gallery.index.vector(wrong)[None], THRESHOLD, k=10, face_ids=[wrong])
    assert match.name is None and match.nearest != "Ann"

    bob_faces = list(bob_cluster.face_ids)
    move_faces(gallery, bob_faces, "Bob")  # every face of a cluster moved: the empty cluster is dropped
    assert list_clusters(gallery) == []
    move_faces(gallery, [wrong], "Ann")  # moving it back to Ann withdraws the rejection
    with gallery.session() as s:
        assert s.scalar(select(func.count()).select_from(RejectionRow).where(RejectionRow.face_id == wrong)) == 1
    assert gallery.person_faces()[wrong] == "Ann"


def test_a_wrong_enrolment_is_undone_by_move_or_reject_and_the_face_kept(gallery):
    """An enrolled face given to no one, or rejected for its person, is no one's reference face any more but
    stays stored; enrolling its photo again gives the same face back."""
    items = [enroll_photo(c * 64, f"/enroll/ann{n}.jpg", 100, 160, 160, embedded(ANN, 500 + n))
             for n, c in enumerate("ef")]
    gallery.enroll("Ann", items)
    first, second = sorted(gallery.person_faces())
    move_faces(gallery, [first], None)
    assert reject_faces(gallery, [second], "Ann") == 1
    assert gallery.person_faces() == {}
    assert set(gallery.faces([first, second])) == {first, second}  # both still stored
    assert {p.name: p.enrolled_faces for p in gallery.people()} == {"Ann": 0}
    gallery.enroll("Ann", items[:1])
    assert gallery.person_faces() == {first: "Ann"}  # the stored face, not a new one


def test_merging_people_moves_their_faces_and_corrections(gallery):
    gallery.write(BatchWrite(photos=photos(ANN, range(6))))
    ids = face_ids_of(gallery, ANN)
    move_faces(gallery, ids[:2], "Ann")
    move_faces(gallery, ids[2:4], "A. N.")
    reject_faces(gallery, ids[4:5], "A. N.")  # not A. N. ...
    reject_faces(gallery, ids[2:3], "Ann")  # ... and this one, given to A. N., was said not to be Ann

    reject_faces(gallery, ids[0:1], "A. N.")  # one of Ann's own faces, said not to be A. N.

    merged = merge_people(gallery, ["A. N."], "Ann")
    assert (merged.faces, merged.created) == (2, False)
    assert gallery.person_names() == ["Ann"]
    assert {i: n for i, n in gallery.person_faces().items()} == {i: "Ann" for i in ids[:4]}
    with gallery.session() as s:
        left = set(s.execute(select(RejectionRow.face_id, RejectionRow.person_id)).all())
    # A. N.'s rejection of face 4 is now Ann's; the two that contradict "A. N. is Ann" are withdrawn
    assert [f for f, _ in left] == [ids[4]]

    renamed = merge_people(gallery, ["Ann"], "Ann Smith")  # into a new name: a rename
    assert renamed.created and gallery.person_names() == ["Ann Smith"]
    with pytest.raises(LibraryError, match="no one named 'Nobody'"):
        merge_people(gallery, ["Nobody"], "Ann Smith")


def test_forgetting_a_person_drops_their_corrections_and_frees_their_faces(gallery):
    gallery.write(BatchWrite(photos=photos(ANN, range(3))))
    cluster_faces(gallery, THRESHOLD, k=10)
    name_cluster(gallery, list_clusters(gallery)[0].id, "Ann")
    gallery.write(BatchWrite(photos=photos(ANN, range(40, 41))))
    (extra,) = [i for i in face_ids_of(gallery, ANN) if i not in gallery.person_faces()]
    reject_faces(gallery, [extra], "Ann")
    gallery.forget("Ann")
    with gallery.session() as s:
        assert s.scalar(select(func.count()).select_from(RejectionRow)) == 0
        assert s.scalar(select(func.count()).select_from(ClusterRow)) == 0
    report = cluster_faces(gallery, THRESHOLD, k=10)  # her faces are unnamed again, and cluster again
    assert (report.new_clusters, report.in_new_clusters) == (1, 4)
