"""Thousands of mutated JPEG, PNG, GIF, WebP and TIFF files thrown at the decoder, the detector, `index` and `who`
(issue 23, item 5): no crash, no hang, every failure named, nothing already indexed lost.

The files are made by `hypothesis` from one LFW photo saved in each format: one to six edits each (a bit
flipped, a byte set to 0, 1, 127, 128 or 255, bytes inserted, deleted or repeated, the file cut short), half of
them in the first 100 bytes, where the headers are. The runs are derandomised, so every test run throws the
same files and a failure is reproducible; a failing example is shrunk to a small one by hypothesis and printed.
"""
from __future__ import annotations

import faulthandler
import hashlib
import io
import sqlite3
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from PIL import Image
from hypothesis import HealthCheck, given, settings  # a test extra, never skipped
from hypothesis import strategies as st

from conftest import lfw_photos
from db.schema import FAILED, INDEXED
from facesearch import api
from facesearch.config import DB_FILE, load_config
from models.image import ImageError, read_image

SUFFIX = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "tiff": ".tif", "tiff-lzw": ".tiff"}
HANG_SECONDS = 300  # the whole test process is stopped, with every thread's stack, if one step takes longer
PER_FILE_SECONDS = 5  # a file's decoding and detection (hypothesis's deadline for one example)


def _seeds() -> dict[str, bytes]:
    """The photo in each format, at 100x100 px so that each file is decoded and detected in milliseconds."""
    photo = Image.open(lfw_photos("Hans_Blix")[0]).convert("RGB").resize((100, 100))
    out = {}
    for name, (fmt, options) in {"jpeg": ("JPEG", {"quality": 90}), "png": ("PNG", {}), "gif": ("GIF", {}),
                                 "webp": ("WEBP", {"quality": 80}), "tiff": ("TIFF", {}),
                                 "tiff-lzw": ("TIFF", {"compression": "tiff_lzw"})}.items():
        buf = io.BytesIO()
        (photo.convert("P") if fmt == "GIF" else photo).save(buf, fmt, **options)
        out[name] = buf.getvalue()
    return out


SEEDS = _seeds()


@dataclass(frozen=True)
class Mutation:
    """A seed and the edits made to it, applied in order: a failing example prints as this short value, and
    `data()` makes its bytes again."""

    fmt: str
    edits: tuple[tuple[str, bool, int, int], ...]  # (kind, in the first 100 bytes, position, amount or value)

    def data(self) -> bytes:
        data = bytearray(SEEDS[self.fmt])
        for kind, head, position, amount in self.edits:
            if not data:
                break
            pos = position % (min(len(data), 100) if head else len(data))
            if kind == "flip":
                data[pos] ^= 1 << (amount % 8)
            elif kind == "set":
                data[pos] = (0, 1, 0x7F, 0x80, 0xFF)[amount % 5]
            elif kind == "insert":
                data[pos:pos] = amount.to_bytes(8, "little")[:1 + amount % 8]
            elif kind == "delete":
                del data[pos:pos + 1 + amount % 64]
            elif kind == "repeat":
                data[pos:pos] = data[pos:pos + 1 + amount % 256]
            else:
                del data[pos:]
        return bytes(data)


@st.composite
def mutated(draw) -> Mutation:
    """A seed with one to six edits (half of them in the headers' first 100 bytes)."""
    edit = st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "repeat", "cut"]), st.booleans(),
                     st.integers(0, 2**31), st.integers(0, 2**63))
    return Mutation(draw(st.sampled_from(sorted(SEEDS))), tuple(draw(st.lists(edit, min_size=1, max_size=6))))


@contextmanager
def no_hang():
    """Stops the process (printing every thread's stack) if the block runs past HANG_SECONDS: a hang in C code
    would not return to Python for a timeout to be raised."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@settings(max_examples=1000, deadline=timedelta(seconds=PER_FILE_SECONDS), derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated())
def test_a_mutated_file_is_decoded_and_searched_for_faces_or_refused_with_its_name(detector, case):
    data = case.data()
    name = f"mutated{SUFFIX[case.fmt]}"
    with no_hang():
        try:
            image = read_image(name, data=data)
        except ImageError as e:
            assert str(e).startswith(f"{name}: ") and len(str(e)) > len(name) + 2
            return
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
        (faces,) = detector.detect([image])
        for face in faces:
            assert 0 <= face.score <= 1


def _rows(home) -> dict[str, tuple[str, str | None, int]]:
    """sha256 -> (status, error, faces) of every stored photo."""
    with sqlite3.connect(home / DB_FILE) as db:
        return {sha: (status, error, n) for sha, status, error, n in db.execute(
            "SELECT p.sha256, p.status, p.error, COUNT(f.id) FROM photos p LEFT JOIN faces f ON f.photo_id = p.id "
            "GROUP BY p.id")}


def test_mutated_files_go_through_index_and_who_and_nothing_indexed_is_lost(tmp_path, data_dir, fake_models):
    home = tmp_path / "home"
    config = load_config(home=home, env={})
    good = lfw_photos("Tony_Blair")[:3]
    api.index(good, config)
    api.enroll("Tony Blair", good[:1], config)
    kept = {hashlib.sha256(p.read_bytes()).hexdigest() for p in good}
    before = {sha: row for sha, row in _rows(home).items() if sha in kept}
    assert len(before) == 3 and all(n >= 1 for _, _, n in before.values())
    batches = iter(range(10**6))
    outcomes: Counter[str] = Counter()

    @settings(max_examples=10, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases=st.lists(mutated(), min_size=100, max_size=100))
    def hundred_files(cases):
        folder = tmp_path / f"batch{next(batches)}"
        folder.mkdir()
        paths = []
        for i, case in enumerate(cases):
            paths.append(folder / f"{i:03d}{SUFFIX[case.fmt]}")
            paths[-1].write_bytes(case.data())
        with no_hang():
            report = api.index([folder], config)
            answers = {a.photo: a for a in api.who(paths, config)}
        assert report.photos_found == len(paths)
        assert report.new + report.already + len(report.failed) == len(paths)
        failed = dict(report.failed)
        assert set(failed) <= {str(p) for p in paths} and all(failed.values())
        rows = _rows(home)
        for p in paths:
            status, error, _ = rows[hashlib.sha256(p.read_bytes()).hexdigest()]  # every file has its row
            answer = answers[p]
            if status == FAILED:
                assert error and answer.error, p  # the failure is named, by index and by who
            else:
                assert answer.error is None, (p, answer.error)
            outcomes[status] += 1
        assert {sha: rows[sha] for sha in before} == before  # the photos indexed before are untouched
        assert api.check(config, files=False).report.consistent

    hundred_files()
    # 1,000 files went through, and the edits made both kinds in number: files refused and files still photos
    assert sum(outcomes.values()) >= 1000 and outcomes[FAILED] >= 100 and outcomes[INDEXED] >= 100, outcomes
