"""Dataset loading: LFW View 1 and all its photos, CelebA-style identity files (on a small layout built from
real training photos), and telling the layouts apart."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import DATA
from models.training.datasets import (DatasetError, DatasetNotFound, MissingPhotos, load_celeba, load_dataset, load_folders,
                             load_lfw, load_lfw_pairs, load_lfw_view1)

TRAIN = DATA / "train"
LFW_ROOT = DATA / "lfw"


@pytest.fixture(scope="module")
def train_dir(data_dir) -> Path:
    if not TRAIN.is_dir():
        pytest.skip(f"training photos not found at {TRAIN}: set FACESEARCH_DATA to the shared data folder")
    return TRAIN


@pytest.fixture
def celeba(tmp_path, train_dir) -> tuple[Path, dict[str, str]]:
    """A CelebA-style folder: 7 real photos renamed 000001.jpg.. in one flat folder, identities 12, 7 and 101
    (3, 2 and 2 photos); returns the folder and photo -> identity (the identity file is written by the test)."""
    folder = tmp_path / "celeba"
    folder.mkdir()
    plan = [("celeba-10001", "12", 3), ("celeba-10006", "7", 2), ("orl-s1", "101", 2)]
    identity_of: dict[str, str] = {}
    number = 1
    for source, identity, count in plan:
        for photo in sorted((train_dir / source).glob("*.jpg"))[:count]:
            name = f"{number:06d}.jpg"
            shutil.copy(photo, folder / name)
            identity_of[name] = identity
            number += 1
    return folder, identity_of


def write_identities(path: Path, identity_of: dict[str, str], extra: str = "") -> Path:
    path.write_text("# photo identity\n\n" + "".join(f"{k} {v}\n" for k, v in identity_of.items()) + extra)
    return path


def test_celeba_loader_groups_photos_by_identity(celeba):
    folder, identity_of = celeba
    ds = load_celeba(folder, write_identities(folder / "identity_CelebA.txt", identity_of))
    assert ds.identities == ("7", "12", "101")  # integer ids sort as numbers
    assert len(ds) == 7 and ds.root == folder and ds.missing == ()
    for path, label in zip(ds.paths, ds.labels):
        assert path.is_file() and ds.identities[label] == identity_of[path.name]
    assert [ds.labels.count(i) for i in range(3)] == [2, 3, 2]
    assert load_celeba(folder, folder / "identity_CelebA.txt", min_photos=3).identities == ("12",)


def test_celeba_malformed_line_names_the_file_and_line(celeba):
    folder, identity_of = celeba
    bad = write_identities(folder / "identity_CelebA.txt", identity_of, extra="000008.jpg 5 extra\n")
    with pytest.raises(DatasetError) as e:
        load_celeba(folder, bad)
    # two header lines, seven photos, then the bad one
    assert str(bad) in str(e.value) and "line 10" in str(e.value) and "000008.jpg 5 extra" in str(e.value)
    bad.write_text("000001.jpg\n")
    with pytest.raises(DatasetError, match="line 1: expected `photo_filename identity_id`"):
        load_celeba(folder, bad)


def test_celeba_photo_with_two_identities_is_an_error(celeba):
    folder, identity_of = celeba
    bad = write_identities(folder / "ids.txt", identity_of, extra="000001.jpg 99\n")
    with pytest.raises(DatasetError, match=r"line 10: 000001.jpg is given identity 99, but line 3 gave it 12"):
        load_celeba(folder, bad)


def test_celeba_missing_photos_are_reported(celeba):
    folder, identity_of = celeba
    index = write_identities(folder / "identity_CelebA.txt", identity_of, extra="424242.jpg 12\n")
    with pytest.raises(MissingPhotos) as e:
        load_celeba(folder, index)
    assert "1 of the 8 photos" in str(e.value) and "424242.jpg" in str(e.value) and "on_missing='skip'" in str(e.value)
    assert e.value.missing == (folder / "424242.jpg",)
    ds = load_celeba(folder, index, on_missing="skip")
    assert len(ds) == 7 and ds.missing == (folder / "424242.jpg",)


def test_load_dataset_tells_the_layouts_apart(celeba, train_dir, tmp_path):
    folder, identity_of = celeba
    index = write_identities(folder / "identity_CelebA.txt", identity_of)
    assert load_dataset(folder).identities == ("7", "12", "101")
    assert len(load_dataset(index)) == 7  # the identity file itself
    assert load_dataset(train_dir).identities == load_folders(train_dir).identities
    if LFW_ROOT.is_dir():
        lfw = load_dataset(LFW_ROOT)
        assert lfw.root == LFW_ROOT and "Colin_Powell" in lfw.identities

    (folder / "identities_copy.txt").write_text("")
    with pytest.raises(DatasetError, match="more than one identity file"):
        load_dataset(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="not a dataset layout I know"):
        load_dataset(empty)
    with pytest.raises(DatasetNotFound):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):  # callers that caught FileNotFoundError still do
        load_dataset(tmp_path / "nowhere")


def test_lfw_view1_pairs(data_dir):
    train = load_lfw_view1(LFW_ROOT, "train")
    test = load_lfw_view1(LFW_ROOT, "test")
    assert (len(train), sum(p.same for p in train)) == (2200, 1100)
    assert (len(test), sum(p.same for p in test)) == (1000, 500)
    assert all(p.fold == 0 for p in train + test)
    first = (LFW_ROOT / "pairsDevTrain.txt").read_text().splitlines()[0].split("\t")
    assert train[0].a.name == f"{first[0]}_{int(first[1]):04d}.jpg" and train[0].same
    assert all(p.a.is_file() and p.b.is_file() for p in test)
    assert all(p.a.parent != p.b.parent for p in test if not p.same)
    with pytest.raises(ValueError, match="which must be one of"):
        load_lfw_view1(LFW_ROOT, "dev")  # type: ignore[arg-type]


def test_lfw_view1_tolerates_the_original_count_line_and_names_bad_lines(tmp_path):
    (tmp_path / "pairsDevTest.txt").write_text("2\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t3\nbroken line\n")
    with pytest.raises(DatasetError, match=r"pairsDevTest.txt: line 4 is not a pair"):
        load_lfw_view1(tmp_path, "test")
    (tmp_path / "pairsDevTest.txt").write_text("2\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t3\n")
    pairs = load_lfw_view1(tmp_path, "test")
    assert [p.same for p in pairs] == [True, False]
    assert pairs[1].b == tmp_path / "images" / "Bob_B" / "Bob_B_0003.jpg"
    with pytest.raises(DatasetNotFound, match="pairsDevTrain.txt: no such file"):
        load_lfw_view1(tmp_path, "train")


def test_lfw_photos_by_person_and_view2_unchanged(data_dir):
    lfw = load_lfw(LFW_ROOT)
    assert (len(lfw), len(lfw.identities)) == (13233, 5749)
    assert sum(1 for label in lfw.labels if lfw.identities[label] == "Colin_Powell") == len(
        list((LFW_ROOT / "images" / "Colin_Powell").glob("*.jpg")))
    pairs = load_lfw_pairs(LFW_ROOT)
    assert len(pairs) == 6000 and [p.fold for p in pairs[::600]] == list(range(10))
    assert sum(p.same for p in pairs) == 3000


def test_lfw_pairs_with_wrong_count_names_the_file(tmp_path):
    (tmp_path / "pairs.txt").write_text("1\t2\nAnn_A\t1\t2\n")
    with pytest.raises(ValueError, match=r"pairs.txt: expected 4 pairs, found 1"):
        load_lfw_pairs(tmp_path)
