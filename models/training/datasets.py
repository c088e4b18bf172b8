"""Face datasets as one notion: a list of photos, each with an identity.

Layouts read here:

- one folder per identity (`../shared/data/train`): `load_folders`;
- LFW (`images/<Name>/<Name>_NNNN.jpg`, View 2 `pairs.txt`, View 1 `pairsDevTrain.txt`/`pairsDevTest.txt`):
  `load_lfw` for its photos by person, `load_lfw_pairs` and `load_lfw_view1` for its pairs;
- CelebA style (a folder of photos plus an identity file of lines `photo_filename identity_id`): `load_celeba`.

`load_dataset` tells the three apart; see its docstring for the rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass(frozen=True)
class Dataset:
    """Photos and their identities; `labels[i]` indexes `identities` for `paths[i]`."""

    root: Path
    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    identities: tuple[str, ...]
    # photos the dataset's index names but that are not on disk (CelebA style, loaded with on_missing="skip")
    missing: tuple[Path, ...] = ()

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


class DatasetError(ValueError):
    """A dataset folder or index file that cannot be read as asked; the message names the file and the problem."""


class DatasetNotFound(DatasetError, FileNotFoundError):
    """A dataset folder or index file that does not exist."""


class MissingPhotos(DatasetError):
    """Photos that a dataset's index names but that are not on disk; `missing` lists them."""

    def __init__(self, message: str, missing: tuple[Path, ...]):
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class Pair:
    """One LFW pair: two photo paths, whether they show the same person, and its fold (0..9 in View 2, 0 in
    View 1)."""

    a: Path
    b: Path
    same: bool
    fold: int


def lfw_photo(images: Path, name: str, number: int) -> Path:
    """The path of photo `number` (1-based) of person `name` under LFW's `images` folder."""
    return images / name / f"{name}_{number:04d}.jpg"


def _parse_pair(images: Path, line: str, source: Path, line_number: int, fold: int) -> Pair:
    """One pair line: `name n1 n2` (same person) or `name1 n1 name2 n2` (different), tab-separated."""
    parts = line.strip().split("\t")
    try:
        if len(parts) == 3:
            name, n1, n2 = parts
            return Pair(lfw_photo(images, name, int(n1)), lfw_photo(images, name, int(n2)), True, fold)
        if len(parts) == 4:
            name1, n1, name2, n2 = parts
            return Pair(lfw_photo(images, name1, int(n1)), lfw_photo(images, name2, int(n2)), False, fold)
    except ValueError:
        pass
    raise DatasetError(f"{source}: line {line_number} is not a pair (name<TAB>n1<TAB>n2 or "
                       f"name1<TAB>n1<TAB>name2<TAB>n2): {line!r}")


def load_lfw_pairs(lfw_root: str | Path, pairs_file: str = "pairs.txt") -> list[Pair]:
    """The View 2 pairs of LFW: 10 folds of 300 same then 300 different pairs, in file order."""
    root = Path(lfw_root)
    images = root / "images"
    source = root / pairs_file
    lines = _read_lines(source)
    try:
        folds, per = (int(v) for v in lines[0].split())
    except (IndexError, ValueError):
        raise DatasetError(f"{source}: line 1 should be the header `folds<TAB>pairs_per_half`, "
                           f"found {lines[0] if lines else ''!r}") from None
    body = lines[1:]
    if len(body) != folds * per * 2:
        raise DatasetError(f"{source}: expected {folds * per * 2} pairs, found {len(body)}")
    return [_parse_pair(images, line, source, i + 2, i // (2 * per)) for i, line in enumerate(body)]


LFW_VIEW1_FILES = {"train": "pairsDevTrain.txt", "test": "pairsDevTest.txt"}


def load_lfw_view1(lfw_root: str | Path, which: Literal["train", "test"] = "train") -> list[Pair]:
    """The View 1 (development) pairs of LFW, in file order, all with fold 0.

    `which` is "train" (`pairsDevTrain.txt`, 1,100 same then 1,100 different pairs) or "test"
    (`pairsDevTest.txt`, 500 then 500). The files are read without a header line; should one start with the
    original count line (a single number), that line is skipped.
    """
    if which not in LFW_VIEW1_FILES:
        raise ValueError(f"which must be one of {sorted(LFW_VIEW1_FILES)}, not {which!r}")
    root = Path(lfw_root)
    source = root / LFW_VIEW1_FILES[which]
    lines = _read_lines(source)
    first = 1
    if lines and lines[0].strip().isdigit():
        lines, first = lines[1:], 2
    return [_parse_pair(root / "images", line, source, i + first, 0) for i, line in enumerate(lines)]


def load_lfw(lfw_root: str | Path, min_photos: int = 1) -> Dataset:
    """All LFW photos (`images/<Name>/*.jpg`) by person; `root` of the result is `lfw_root`."""
    root = Path(lfw_root)
    if not (root / "images").is_dir():
        raise DatasetNotFound(f"{root}: no `images` folder; an LFW folder holds images/<Name>/<Name>_NNNN.jpg")
    ds = load_folders(root / "images", min_photos)
    return Dataset(root, ds.paths, ds.labels, ds.identities)


def load_celeba(images_dir: str | Path, identity_file: str | Path, min_photos: int = 1,
                on_missing: Literal["error", "skip"] = "error") -> Dataset:
    """A CelebA-style dataset: photos in `images_dir`, identities in `identity_file`.

    Each non-blank line of the identity file is `photo_filename identity_id` (whitespace-separated, as in
    CelebA's `identity_CelebA.txt`); a line starting with `#` is a comment. The file name is relative to
    `images_dir`. Identities are named by their id, sorted numerically where all ids are integers.
    Photos of `images_dir` that the file does not name are left out; identities with fewer than
    `min_photos` photos on disk are left out.

    Photos the file names but that are not on disk raise MissingPhotos listing them (`on_missing="error"`),
    or are left out and listed in the result's `missing` (`on_missing="skip"`). A malformed line, or a photo
    given two identities, raises DatasetError naming the file and the line.
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', not {on_missing!r}")
    images_dir, identity_file = Path(images_dir), Path(identity_file)
    if not images_dir.is_dir():
        raise DatasetNotFound(f"{images_dir}: no such folder (the photos of {identity_file})")
    identity_of: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for number, line in enumerate(_read_lines(identity_file), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2:
            raise DatasetError(f"{identity_file}: line {number}: expected `photo_filename identity_id`, "
                               f"found {line!r}")
        name, identity = parts
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DatasetError(f"{identity_file}: line {number}: the photo {name!r} must be a path inside "
                               f"{images_dir}")
        if name in identity_of and identity_of[name] != identity:
            raise DatasetError(f"{identity_file}: line {number}: {name} is given identity {identity}, but line "
                               f"{line_of[name]} gave it {identity_of[name]}")
        identity_of[name], line_of[name] = identity, number
    present: dict[str, list[Path]] = {}
    missing: list[Path] = []
    for name, identity in identity_of.items():
        path = images_dir / name
        if path.is_file():
            present.setdefault(identity, []).append(path)
        else:
            missing.append(path)
    if missing and on_missing == "error":
        shown = ", ".join(p.name for p in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise MissingPhotos(f"{identity_file}: {len(missing)} of the {len(identity_of)} photos it names are not in "
                            f"{images_dir} ({shown}).\nLoad the rest with on_missing='skip'.", tuple(missing))
    numeric = all(i.lstrip("-").isdigit() for i in present)
    order = sorted(present, key=(lambda i: (int(i), i)) if numeric else None)
    paths: list[Path] = []
    labels: list[int] = []
    names: list[str] = []
    for identity in order:
        photos = sorted(present[identity])
        if len(photos) < min_photos:
            continue
        paths.extend(photos)
        labels.extend([len(names)] * len(photos))
        names.append(identity)
    return Dataset(images_dir, tuple(paths), tuple(labels), tuple(names), tuple(missing))


def find_identity_file(folder: Path) -> Path | None:
    """The identity file of a CelebA-style folder: its one `*.txt` whose name contains "identit" (any case),
    e.g. `identity_CelebA.txt`; None when there is none. Two or more raise DatasetError."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt"
                   and "identit" in p.name.lower())
    if len(found) > 1:
        raise DatasetError(f"{folder}: more than one identity file ({', '.join(p.name for p in found)}); "
                           "point at the one to use")
    return found[0] if found else None


def load_dataset(path: str | Path, min_photos: int = 1,
                 on_missing: Literal["error", "skip"] = "error") -> Dataset:
    """Load a dataset whatever its layout. The rule, first match wins:

    1. `path` is an identity `.txt` file: CelebA style, photos in the file's folder;
    2. `path` is a folder holding `pairs.txt`: LFW (`load_lfw`, photos under `images/`);
    3. `path` is a folder holding one `*.txt` file whose name contains "identit" (`identity_CelebA.txt`):
       CelebA style, photos in that folder (`load_celeba`);
    4. `path` is a folder with subfolders: one folder per identity (`load_folders`).

    Anything else raises DatasetError saying which layouts were looked for.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".txt":
        return load_celeba(path.parent, path, min_photos, on_missing)
    if not path.is_dir():
        raise DatasetNotFound(f"{path}: no such file or folder")
    if (path / "pairs.txt").is_file():
        return load_lfw(path, min_photos)
    identity_file = find_identity_file(path)
    if identity_file is not None:
        return load_celeba(path, identity_file, min_photos, on_missing)
    if any(p.is_dir() for p in path.iterdir()):
        return load_folders(path, min_photos)
    raise DatasetError(f"{path}: not a dataset layout I know. Expected one of: an LFW folder (pairs.txt and "
                       "images/), a folder of photos with an identity file (*identit*.txt, lines "
                       "`photo_filename identity_id`), or one subfolder of photos per identity.")


def _read_lines(source: Path) -> list[str]:
    """The lines of a text file, trailing blank lines dropped; DatasetError naming the file if unreadable."""
    try:
        return source.read_text(encoding="utf-8").rstrip().splitlines()
    except FileNotFoundError:
        raise DatasetNotFound(f"{source}: no such file") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{source}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
