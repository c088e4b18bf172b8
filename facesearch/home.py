"""Opening a home: the models loaded once per process, the gallery of a home (with its write lock for commands
that write), and the errors a user sees when the home, its database or the model is not as expected.

`load_extractor` and `load_detector` are looked up on this module by every command, so a test can put its
own extractor here (tests/conftest.py, `fake_models`).
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from db import SchemaTooNew
from facesearch.config import Config
from facesearch.errors import (
    DatabaseDamaged, DatabaseUnavailable, EmptyHome, ModelMismatch, ModelNotFound, ModelRefused, PhotoNotFound,
)
from indexer import Gallery, Pipeline
from indexer.errors import ModelChanged
from indexer.lock import hold_home
from indexer.pipeline import FaceDetector, FaceExtractor
from indexer.private import create_private_file, loose, private_dir
from models.extractor import ModelInfo


@functools.lru_cache(maxsize=4)
def _extractor(path: str) -> FaceExtractor:
    from models.extractor import Extractor, ModelMissing
    from models.graph_check import UnsafeGraph

    try:
        return Extractor(path)
    except UnsafeGraph as e:
        raise ModelRefused(f"{e}.\nOnly graphs written by `facesearch train` (or of the same kinds) are run; "
                           "point FACESEARCH_MODEL (or --model) at one, or leave it unset for the shipped model."
                           ) from None
    except ModelMissing as e:
        raise ModelNotFound(
            f"{e}.\nThe extractor is not installed: put the trained model (extractor.keras with extractor.json) "
            "in models/weights/, or point FACESEARCH_MODEL (or --model) at one."
        ) from None


@functools.lru_cache(maxsize=4)
def _detector(max_side: int, min_face_px: int, min_score: float, graphs_dir: Path | None) -> FaceDetector:
    from models.detect import Detector

    # the detector batches by its own measure (pixels per MTCNN call), not by --batch-size
    return Detector(max_side=max_side, min_face_px=min_face_px, min_score=min_score, graph_cache=graphs_dir)


def load_extractor(config: Config) -> FaceExtractor:
    """The extractor at `config.model_path`, loaded once per process (its network loads on first use)."""
    return _extractor(str(config.model_path))


def load_detector(config: Config) -> FaceDetector:
    """The MTCNN detector with the config's settings, loaded once per process."""
    return _detector(config.max_side, config.min_face_px, config.min_score, config.graphs_dir)


def has_database(config: Config) -> bool:
    return config.db_file is None or config.db_file.exists()


def require_database(config: Config) -> None:
    """EmptyHome when the home has no database yet (nothing was ever indexed or enrolled there)."""
    if not has_database(config):
        raise EmptyHome(
            f"{config.home} holds no facesearch database yet: nothing was indexed or enrolled there.\n"
            f"Enroll people (facesearch --home {config.home} enroll NAME PHOTO...) and index photos "
            f"(facesearch --home {config.home} index FOLDER), or pass the --home you used before."
        )


@contextmanager
def gallery(config: Config, model: ModelInfo, create: bool, writes: bool = False,
             on_wait: Callable[[str], None] | None = None, warn_loose: bool = True):
    """The gallery of the home; with `create` False, EmptyHome where there is no database yet.

    With `writes`, the home's write lock is held until the gallery is closed (its index saved): another
    process writing to the same home is waited for, and `on_wait` told so once. With `warn_loose`, a home open
    to other users is warned about (`warn_if_loose`); `check` reports it itself.
    """
    if not create:
        require_database(config)
    with ExitStack() as stack:
        if writes:
            try:
                stack.enter_context(hold_home(config.home, on_wait))
            except OSError as e:
                raise DatabaseUnavailable(
                    f"cannot take the write lock in {config.home}: {e.strerror or e}.\n"
                    "Check that the home folder (--home) is writable."
                ) from None
        yield from _open_gallery(config, model, create, warn_loose)


class LooseHomeWarning(UserWarning):
    """A home that users other than its owner may read (the CLI shows it once per command)."""


_warned_homes: set[Path] = set()


def warn_if_loose(home: Path) -> None:
    """Warn, once per home and process, when the home folder or a file in it is open to other users."""
    if home in _warned_homes:
        return
    found = loose(home)
    if found:
        _warned_homes.add(home)
        shown = ", ".join(f"{'the folder' if p == home else p.name} ({m:04o})" for p, m in found[:4])
        more = f" and {len(found) - 4} more" if len(found) > 4 else ""
        warnings.warn(LooseHomeWarning(
            f"{home} holds biometric data, but other users may read it: {shown}{more}. "
            f"Make it private with: facesearch --home {home} check --repair"), stacklevel=3)


def _open_gallery(config: Config, model: ModelInfo, create: bool, warn_loose: bool = True):
    try:
        if create:
            private_dir(config.home)
            if config.db_file is not None:
                private_dir(config.db_file.parent)
                create_private_file(config.db_file)
        if warn_loose:
            warn_if_loose(config.home)
        gallery = Gallery.open(config.db_url, config.index_path, model)
    except ImportError as e:
        raise DatabaseUnavailable(
            f"cannot open the database {config.db_shown}: its driver is not installed ({e}).\n"
            "Install it (for PostgreSQL: pip install 'facesearch[postgres]' and a postgresql+psycopg:// URL), "
            "or check --db / FACESEARCH_DB."
        ) from None
    except SchemaTooNew as e:
        raise DatabaseUnavailable(f"cannot open the database {config.db_shown}: {e}") from None
    except (SQLAlchemyError, OSError) as e:
        raise_if_damaged(config, e)
        raise DatabaseUnavailable(
            f"cannot open the database {config.db_shown}: {getattr(e, 'orig', None) or e}.\n"
            "Check --db / FACESEARCH_DB, and that the home folder is writable."
        ) from None
    except ModelChanged as e:
        raise ModelMismatch(str(e)) from None
    try:
        yield gallery
    except SQLAlchemyError as e:
        raise_if_damaged(config, e)
        raise DatabaseUnavailable(f"database error on {config.db_shown}: {getattr(e, 'orig', None) or e}") from None
    finally:
        gallery.close()


def raise_if_damaged(config: Config, error: Exception) -> None:
    """DatabaseDamaged, naming the file, when SQLite says the file is no database or a damaged one."""
    text = str(getattr(error, "orig", None) or error)
    if config.db_file is not None and ("not a database" in text or "malformed" in text):
        raise DatabaseDamaged(
            f"{config.db_file} is damaged or is not a facesearch database ({text}).\n"
            f"Restore it from a backup, or move it aside and index again (facesearch index FOLDER)."
        ) from None


def pipeline(config: Config, detector: FaceDetector | None, extractor: FaceExtractor) -> Pipeline:
    return Pipeline(detector or load_detector(config), extractor, config.batch_size)


def some_existing(paths: Sequence[str | Path]) -> list[Path]:
    """The paths given (user's ~ expanded), those missing included: each is reported among the answers. When
    none exists there is nothing to do, and the first missing one is the error (PhotoNotFound)."""
    given = [Path(p).expanduser() for p in paths]
    if not any(p.exists() for p in given):
        existing(given)
    return given


def existing(paths: Sequence[str | Path]) -> list[Path]:
    out = []
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            raise PhotoNotFound(f"{p}: no such file or folder. Check the path (and its spelling).")
        out.append(p)
    return out
