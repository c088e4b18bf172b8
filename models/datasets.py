"""Face datasets as one notion: a list of photos, each with an identity.

Layouts read here: one folder per identity (`../shared/data/train`), and LFW (images plus `pairs.txt`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass(frozen=True)
class Dataset:
    """Photos and their identities; `labels[i]` indexes `identities` for `paths[i]`."""

    root: Path
    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    identities: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, identities: set[str]) -> "Dataset":
        """The photos of the named identities only, relabelled 0..k-1 in sorted order."""
        keep = sorted(identities & set(self.identities))
        new_label = {name: i for i, name in enumerate(keep)}
        pairs = [(p, new_label[self.identities[l]]) for p, l in zip(self.paths, self.labels)
                 if self.identities[l] in new_label]
        return Dataset(self.root, tuple(p for p, _ in pairs), tuple(l for _, l in pairs), tuple(keep))


def load_folders(root: str | Path, min_photos: int = 1) -> Dataset:
    """One subfolder per identity, photos inside it; identities with fewer than `min_photos` are left out."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    paths: list[Path] = []
    labels: list[int] = []
    names: list[str] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in sub.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        if len(photos) < min_photos:
            continue
        label = len(names)
        names.append(sub.name)
        paths.extend(photos)
        labels.extend([label] * len(photos))
    return Dataset(root, tuple(paths), tuple(labels), tuple(names))


@dataclass(frozen=True)
class Pair:
    """One LFW pair: two photo paths, whether they show the same person, and its fold (0..9)."""

    a: Path
    b: Path
    same: bool
    fold: int


def lfw_photo(images: Path, name: str, number: int) -> Path:
    return images / name / f"{name}_{number:04d}.jpg"


def load_lfw_pairs(lfw_root: str | Path, pairs_file: str = "pairs.txt") -> list[Pair]:
    """The View 2 pairs of LFW: 10 folds of 300 same then 300 different pairs, in file order."""
    root = Path(lfw_root)
    images = root / "images"
    lines = (root / pairs_file).read_text().strip().splitlines()
    folds, per = (int(v) for v in lines[0].split())
    pairs: list[Pair] = []
    body = lines[1:]
    if len(body) != folds * per * 2:
        raise ValueError(f"{root / pairs_file}: expected {folds * per * 2} pairs, found {len(body)}")
    for i, line in enumerate(body):
        fold = i // (2 * per)
        parts = line.split("\t")
        if len(parts) == 3:
            name, n1, n2 = parts
            pairs.append(Pair(lfw_photo(images, name, int(n1)), lfw_photo(images, name, int(n2)), True, fold))
        elif len(parts) == 4:
            name1, n1, name2, n2 = parts
            pairs.append(Pair(lfw_photo(images, name1, int(n1)), lfw_photo(images, name2, int(n2)), False, fold))
        else:
            raise ValueError(f"{root / pairs_file}: line {i + 2} is not a pair: {line!r}")
    return pairs
