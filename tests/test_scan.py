"""Scanning folders for photos and hashing them by content."""
from __future__ import annotations

import hashlib

from indexer.scan import hash_file, scan


def test_scan_walks_folders_and_counts_what_it_skips(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ["a/x.JPG", "a/y.jpeg", "a/b/z.png", "a/b/w.webp", "a/t.TIFF", "a/g.gif", "a/m.bmp", "a/n.tif",
                 "a/notes.txt", "a/clip.mov", ".hidden/secret.jpg", "a/.thumb.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "odd.dat").write_bytes(b"x")
    found = scan([tmp_path, tmp_path / "a" / "x.JPG", tmp_path / "odd.dat", tmp_path / "gone"])
    names = sorted(p.relative_to(tmp_path).as_posix() for p in found.photos)
    assert names == ["a/b/w.webp", "a/b/z.png", "a/g.gif", "a/m.bmp", "a/n.tif", "a/t.TIFF", "a/x.JPG", "a/y.jpeg",
                     "odd.dat"]  # a file named explicitly is taken whatever its suffix; each photo appears once
    assert found.skipped == 3  # notes.txt, clip.mov, and odd.dat met while walking
    assert found.missing == (tmp_path / "gone",)
    assert all(p.is_absolute() for p in found.photos)


def test_hash_is_the_sha256_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 10_000
    path = tmp_path / "p.jpg"
    path.write_bytes(data)
    assert hash_file(path) == (hashlib.sha256(data).hexdigest(), len(data))
