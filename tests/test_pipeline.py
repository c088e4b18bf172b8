"""Indexing real LFW photos through the real detector, with the test double of the extractor: nothing is
indexed twice, moves are followed, bad files are recorded and skipped, a killed run reruns cleanly, and a new
extractor re-embeds stored faces without detecting them again."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import lfw_photos
from db import FaceRow, PhotoRow, sqlite_url
from fakes import FakeExtractor
from indexer import Gallery, Pipeline, enroll_photos, index_paths, reembed_stale
from indexer.pipeline import ahead, enroll_people
from indexer.vectors import from_bytes
from models.detect import main_face
from models.image import read_image


@pytest.fixture
def folder(tmp_path, data_dir):
    """Six LFW photos of two people, a text file, and a damaged 'photo'."""
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    for p in lfw_photos("Hans_Blix")[:3] + lfw_photos("Laura_Bush")[:3]:
        shutil.copy(p, root / "trip" / p.name)
    (root / "notes.txt").write_text("not a photo")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root


def gallery_of(tmp_path, extractor) -> Gallery:
    return Gallery.open(sqlite_url(tmp_path / "facesearch.db"), tmp_path / "faces.faiss", extractor.info)


def rows(g: Gallery) -> tuple[int, int]:
    with g.session() as s:
        return s.scalar(select(func.count(PhotoRow.id))), s.scalar(select(func.count(FaceRow.id)))


class CountingDetector:
    """The real detector, counting calls; raises KeyboardInterrupt on call number `fail_on` (a killed run)."""

    def __init__(self, detector, fail_on: int | None = None):
        self.detector = detector
        self.min_score = detector.min_score
        self.fail_on = fail_on
        self.calls = 0

    def detect(self, images, min_score=None):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt
        return self.detector.detect(images, min_score)


class RecordingDetector:
    """The real detector, recording the decoded pixels given to each call."""

    def __init__(self, detector):
        self.detector = detector
        self.min_score = detector.min_score
        self.pixels: list[int] = []

    def detect(self, images, min_score=None):
        self.pixels.append(sum(image.shape[0] * image.shape[1] for image in images))
        return self.detector.detect(images, min_score)


def vectors_in_id_order(g: Gallery) -> np.ndarray:
    with g.session() as s:
        rows = s.scalars(select(FaceRow.vector).order_by(FaceRow.id)).all()
    return np.stack([from_bytes(v, g.model.dim) for v in rows])


def faces_by_photo(g: Gallery) -> dict[str, list[tuple[float, ...]]]:
    with g.session() as s:
        found = s.execute(select(PhotoRow.sha256, FaceRow.x0, FaceRow.y0, FaceRow.x1, FaceRow.y1)
                          .join(FaceRow, FaceRow.photo_id == PhotoRow.id, isouter=True)).all()
    out: dict[str, list[tuple[float, ...]]] = {}
    for sha, *box in found:
        out.setdefault(sha, [])
        if box[0] is not None:
            out[sha].append(tuple(box))
    return {sha: sorted(boxes) for sha, boxes in out.items()}


def test_a_batch_is_decoded_and_detected_in_parts_of_bounded_pixels_with_the_same_faces(tmp_path, folder, detector,
                                                                                         fake_extractor):
    """With room for two of its photos (all of one size) at a time, a batch of 16 is decoded and detected two
    photos at a time, still in one transaction, and gives the faces of one pass over the whole batch."""
    h, w = read_image(next((folder / "trip").iterdir())).shape[:2]
    recording = RecordingDetector(detector)
    (tmp_path / "parts").mkdir()
    (tmp_path / "whole").mkdir()
    with gallery_of(tmp_path / "parts", fake_extractor) as g:
        parts = index_paths(g, Pipeline(recording, fake_extractor, batch_size=16, max_batch_pixels=2 * h * w),
                            [folder])
        in_parts = faces_by_photo(g)
    with gallery_of(tmp_path / "whole", fake_extractor) as g:
        whole = index_paths(g, Pipeline(detector, fake_extractor, batch_size=16), [folder])
        in_one = faces_by_photo(g)
    assert recording.pixels == [2 * h * w] * 3
    assert (parts.new, parts.faces, parts.failed) == (whole.new, whole.faces, whole.failed) and whole.new == 6
    assert in_parts.keys() == in_one.keys()
    for sha, boxes in in_one.items():
        assert len(in_parts[sha]) == len(boxes)
        np.testing.assert_allclose(np.array(in_parts[sha]).reshape(-1, 4), np.array(boxes).reshape(-1, 4), atol=1.5)


def test_index_then_reindex_adds_nothing(tmp_path, folder, detector, fake_extractor):
    pipeline = Pipeline(detector, fake_extractor, batch_size=4)
    with gallery_of(tmp_path, fake_extractor) as g:
        first = index_paths(g, pipeline, [folder])
        assert (first.new, first.already, first.skipped) == (6, 0, 1)
        assert first.faces >= 6
        assert [p.split("/")[-1] for p, _ in first.failed] == ["broken.jpg"]
        assert "damaged" in first.failed[0][1] or "not an image" in first.failed[0][1]
        assert g.failures()[0][0].endswith("broken.jpg")
        photos, faces = rows(g)
        assert (photos, faces) == (7, first.faces)  # the broken photo is recorded, with no face

        again = index_paths(g, pipeline, [folder])
        assert (again.new, again.already, again.faces) == (0, 6, 0)
        assert rows(g) == (photos, faces)
        assert g.index.count == faces


def test_a_moved_photo_keeps_its_faces_and_a_copy_is_not_indexed_twice(tmp_path, folder, detector, fake_extractor):
    pipeline = Pipeline(detector, fake_extractor)
    with gallery_of(tmp_path, fake_extractor) as g:
        index_paths(g, pipeline, [folder])
        before = rows(g)
        original = sorted((folder / "trip").iterdir())[0]
        (folder / "renamed").mkdir()
        moved_to = folder / "renamed" / "new-name.jpg"
        original.rename(moved_to)
        shutil.copy(sorted((folder / "trip").iterdir())[0], folder / "copy.jpg")
        report = index_paths(g, pipeline, [folder])
        assert (report.new, report.moved, report.faces) == (0, 1, 0)
        assert report.already == 6  # five unchanged, one copy of a photo already indexed
        assert rows(g) == before
        with g.session() as s:
            assert s.scalar(select(func.count(PhotoRow.id)).where(PhotoRow.path == str(moved_to))) == 1


def test_a_killed_run_reruns_without_duplicates(tmp_path, folder, detector, fake_extractor):
    killer = CountingDetector(detector, fail_on=2)
    with gallery_of(tmp_path, fake_extractor) as g:
        with pytest.raises(KeyboardInterrupt):
            index_paths(g, Pipeline(killer, fake_extractor, batch_size=3), [folder])
        photos_after_kill, _ = rows(g)
        assert 0 < photos_after_kill < 7  # the first batch was committed, the second was not
    with gallery_of(tmp_path, fake_extractor) as g:
        report = index_paths(g, Pipeline(detector, fake_extractor, batch_size=3), [folder])
        assert report.new == 7 - photos_after_kill  # only what the killed run had not committed is read
        photos, faces = rows(g)
        assert photos == 7
        with g.session() as s:
            assert s.scalar(select(func.count(func.distinct(PhotoRow.sha256)))) == 7
        assert g.index.count == faces


def test_a_new_extractor_reembeds_stored_faces_without_detecting(tmp_path, folder, detector, fake_extractor):
    with gallery_of(tmp_path, fake_extractor) as g:
        first = index_paths(g, Pipeline(detector, fake_extractor), [folder / "trip"])
    newer = FakeExtractor(version="fake-test-v2", seed=1)
    counting = CountingDetector(detector)
    with gallery_of(tmp_path, newer) as g:
        assert g.index.count == 0 and g.counts().stale_faces == first.faces
        report = index_paths(g, Pipeline(counting, newer), [folder / "trip"])
        assert report.reembedded == 6 and report.new == 0
        assert counting.calls == 0
        assert g.index.count == first.faces and g.counts().stale_faces == 0
        with g.session() as s:
            assert set(s.scalars(select(FaceRow.model_version))) == {"fake-test-v2"}


def test_reembed_moves_a_gallery_to_an_extractor_of_another_chip_geometry(tmp_path, folder, detector,
                                                                         fake_extractor):
    """The chip geometry is part of the model: faces stored under a model of 112 px chips are re-embedded by one of
    150 px chips (`facesearch reembed`) from their stored landmarks, on chips of the new geometry, nothing
    detected again."""
    from models.align import DLIB_150

    with gallery_of(tmp_path, fake_extractor) as g:
        first = index_paths(g, Pipeline(detector, fake_extractor), [folder / "trip"])
    assert fake_extractor.chip_sides == {112}
    newer = FakeExtractor(version="fake-dlib150", seed=1, chip=DLIB_150)
    counting = CountingDetector(detector)
    with gallery_of(tmp_path, newer) as g:
        report = reembed_stale(g, Pipeline(counting, newer))
        assert report.faces == first.faces and not report.failed and counting.calls == 0
        assert newer.chip_sides == {150}
        assert g.index.count == first.faces and g.counts().stale_faces == 0


def test_enroll_takes_the_main_face_and_reports_photos_without_one(tmp_path, folder, detector, fake_extractor):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), (120, 130, 140)).save(blank)
    photos = sorted((folder / "trip").glob("Hans_Blix*")) + [blank, folder / "broken.jpg"]
    with gallery_of(tmp_path, fake_extractor) as g:
        report = enroll_photos(g, Pipeline(detector, fake_extractor), "Hans Blix", photos)
        assert len(report.added) == 3
        assert dict(report.failed)[str(blank)] == "no face found"
        assert str(folder / "broken.jpg") in dict(report.failed)
        ids, vectors = g.vectors_of("Hans Blix")
        assert len(ids) == 3
        # the enrolled face is the one in the middle of the LFW crop
        for face in g.faces(ids).values():
            cx = (face.box.x0 + face.box.x1) / 2
            assert 50 < cx < 110
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_enrolling_many_people_batches_their_photos_and_keeps_each_persons_own(tmp_path, detector,
                                                                               fake_extractor):
    """Five people with one to three photos each (and one whose only photo has no face): photos of different
    people share detector calls, yet every face lands with its own person, and a person without a face is
    reported and not created."""
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (160, 160), (120, 130, 140)).save(blank)
    people = [("Hans Blix", lfw_photos("Hans_Blix")[:3]), ("Laura Bush", lfw_photos("Laura_Bush")[:1]),
              ("Nobody", [blank]), ("Tony Blair", lfw_photos("Tony_Blair")[:2]),
              ("Colin Powell", lfw_photos("Colin_Powell")[:1])]
    counting = CountingDetector(detector)
    with gallery_of(tmp_path, fake_extractor) as g:
        reports = enroll_people(g, Pipeline(counting, fake_extractor, batch_size=4), people)
        assert [r.name for r in reports] == [name for name, _ in people]
        assert counting.calls == 2  # 8 photos in batches of 4, across people
        assert [len(r.added) for r in reports] == [3, 1, 0, 2, 1]
        assert reports[2].failed == ((str(blank), "no face found"),)
        assert "Nobody" not in g.person_names()
        for name, photos in people:
            if name == "Nobody":
                continue
            ids, vectors = g.vectors_of(name)
            # each enrolled vector is the one the same photo gets when enrolled alone
            assert len(ids) == len(photos)
            alone = Pipeline(detector, fake_extractor).faces_in([read_image(p) for p in photos])
            expected = set()
            for found in alone:
                main = main_face([e.face for e in found], 160, 160)
                expected.add(tuple(np.round(next(e.vector for e in found if e.face is main), 5)))
            assert {tuple(np.round(v, 5)) for v in vectors} == expected
    with gallery_of(tmp_path, fake_extractor) as g:  # the index was saved once, at the end, and agrees
        assert g.index.count == 7


def test_reembed_gives_every_stored_face_a_new_vector_without_detecting(tmp_path, folder, detector, fake_extractor):
    trip = sorted((folder / "trip").iterdir())
    with gallery_of(tmp_path, fake_extractor) as g:
        indexed = index_paths(g, Pipeline(detector, fake_extractor), [folder / "trip"])
        enroll_photos(g, Pipeline(detector, fake_extractor), "Hans Blix", [lfw_photos("Hans_Blix")[10]])
    trip[0].unlink()  # gone: its faces keep their old vectors
    trip[1].write_bytes(trip[2].read_bytes())  # changed: the stored landmarks no longer apply
    newer = FakeExtractor(version="fake-test-v2", seed=1)
    counting = CountingDetector(detector)
    with gallery_of(tmp_path, newer) as g:
        report = reembed_stale(g, Pipeline(counting, newer))
        assert counting.calls == 0
        assert report.photos == 5  # four gallery photos left as they were, and the enrolled one
        assert sorted(reason.split(" (")[0].split(";")[0] for _, reason in report.failed) == [
            "cannot read", "the file changed since it was indexed"]
        assert len(g.vectors_of("Hans Blix")[0]) == 1
        c = g.counts()
        assert c.faces == report.faces == g.index.count
        assert c.faces + c.stale_faces == indexed.faces + 1


@pytest.mark.parametrize("engine", ["processes", "ray"])
def test_worker_engines_index_what_one_process_indexes(tmp_path, folder, detector, shipped_model, engine):
    """`index --workers 2` (spawned processes) and `index --engine ray --workers 2` (actors on a Ray instance
    started for the run): the same photos, failures, boxes and vectors as indexing in this process."""
    from indexer.workers import ModelSettings, WorkerPool
    from models.detect import DEFAULT_MAX_SIDE, DEFAULT_MIN_FACE_PX
    from models.extractor import Extractor

    if engine == "ray":
        pytest.importorskip("ray", reason="the Ray engine is an extra: pip install -e '.[test]'")
        from indexer.ray_engine import RayPool

    extractor = Extractor(shipped_model)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with gallery_of(tmp_path / "one", extractor) as g:
        alone = index_paths(g, Pipeline(detector, extractor), [folder])
        want = faces_by_photo(g)
        want_vectors = vectors_in_id_order(g)
    settings = ModelSettings(str(shipped_model), DEFAULT_MAX_SIDE, DEFAULT_MIN_FACE_PX, 0.9, 100_000_000)
    pool = RayPool(settings, 2) if engine == "ray" else WorkerPool(settings, 2)
    with pool, gallery_of(tmp_path / "two", extractor) as g:
        pooled = index_paths(g, Pipeline(detector, extractor, batch_size=4, pool=pool), [folder])
        got = faces_by_photo(g)
        got_vectors = vectors_in_id_order(g)
    assert (pooled.new, pooled.faces, pooled.failed) == (alone.new, alone.faces, alone.failed)
    assert [p.split("/")[-1] for p, _ in pooled.failed] == ["broken.jpg"]
    assert got.keys() == want.keys()
    for sha, boxes in want.items():
        np.testing.assert_allclose(np.array(got[sha]).reshape(-1, 4), np.array(boxes).reshape(-1, 4), atol=0.5)
    # vectors in face-id order: both runs wrote the photos in the same order
    np.testing.assert_allclose(got_vectors, want_vectors, atol=1e-4)


def test_ahead_yields_in_order_holds_at_most_two_and_passes_errors_on():
    """`ahead` makes the next item in a thread while the caller holds the current one: never more than two
    exist at once, the order is kept, and an error of the producer reaches the caller."""
    alive: set[int] = set()
    most = []

    def produce(n: int, fail_at: int | None = None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"photo {i} is broken")
            alive.add(i)
            most.append(len(alive))
            yield i

    got = []
    for item in ahead(produce(20)):
        time.sleep(0.002)  # the caller works; the producer may run ahead meanwhile
        got.append(item)
        alive.discard(item)  # the caller lets go of it
    assert got == list(range(20)) and max(most) <= 2

    with pytest.raises(ValueError, match="photo 3 is broken"):
        list(ahead(produce(10, fail_at=3)))

    made_before = len(most)
    early = ahead(produce(1000))
    assert next(early) == 0
    early.close()  # the caller stops early: the producer stops too, at most one item later
    time.sleep(0.05)
    assert len(most) - made_before <= 3


def test_batches_are_bounded_by_photos_and_by_the_bytes_held(tmp_path):
    """A batch's files are read once and held until decoded, so a batch ends at `size` photos or before its
    files exceed `max_bytes`; a larger file makes a batch of its own, a file gone counts as empty."""
    from indexer.pipeline import batches

    sizes = [40, 40, 40, 150, 10, 10, 10, 10, 10]
    paths = []
    for n, size in enumerate(sizes):
        paths.append(tmp_path / f"{n}.jpg")
        paths[-1].write_bytes(b"x" * size)
    paths.append(tmp_path / "gone.jpg")
    got = [[p.name for p in b] for b in batches(paths, size=4, max_bytes=100)]
    assert got == [["0.jpg", "1.jpg"], ["2.jpg"], ["3.jpg"], ["4.jpg", "5.jpg", "6.jpg", "7.jpg"],
                   ["8.jpg", "gone.jpg"]]
    assert sum(map(len, got)) == len(paths)
