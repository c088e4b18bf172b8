"""Configuration: one frozen dataclass rooted at the home folder. This is the only module that reads the
environment: FACESEARCH_HOME (default ~/.facesearch), FACESEARCH_DB (a SQLAlchemy URL, default an SQLite
file in the home), FACESEARCH_MODEL (the extractor's weights, default the shipped model), FACESEARCH_CACHE
(where MTCNN's built graphs and the toolkit's aligned-chip caches go, default ~/.cache/facesearch), and for the
training toolkit FACESEARCH_DATA (the face datasets, default ../shared/data)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# `facesearch --help` imports this module: SQLAlchemy (0.35 to 0.55 s to import) and NumPy wait for a command,
# so the model's path comes from the `models` package itself (no NumPy) and the SQLite URL is written out
from models import DEFAULT_MODEL

DEFAULT_HOME = Path("~/.facesearch")
DB_FILE = "facesearch.db"
INDEX_FILE = "faces.faiss"


@dataclass(frozen=True)
class Config:
    """Where a gallery lives and how photos are read. Thresholds are cosine distances, sizes pixels."""

    home: Path
    db_url: str
    model_path: Path = DEFAULT_MODEL
    threshold: float | None = None  # overrides the model's calibrated threshold when set
    stranger_rate: float = 0.01  # `who` and `search`: the share of strangers they may name as someone
    k: int = 50  # neighbours searched per face by `who`
    batch_size: int = 16  # photos written together (one transaction); large ones are detected in smaller parts
    max_side: int = 1024  # photos are detected on a copy at most this long (models.detect.DEFAULT_MAX_SIDE)
    min_face_px: int = 20  # smallest face searched for, in pixels of that copy
    min_score: float = 0.9  # detector confidence below which a face is dropped
    workers: int | None = None  # `index`: processes (local) or actors (ray) that decode, detect and embed;
    # None: the command's own process (local engine), one actor per CPU of the cluster (ray)
    engine: str = "local"  # `index`: local, or ray (indexer/ray_engine.py)
    ray_address: str | None = None  # `index --engine ray`: a cluster to join; None starts one on this machine
    data_dir: Path = Path("../shared/data")  # face datasets for training and evaluation (FACESEARCH_DATA)
    chips_dir: Path = Path("~/.cache/facesearch/chips").expanduser()  # aligned-chip caches of those datasets
    graphs_dir: Path | None = Path("~/.cache/facesearch/graphs").expanduser()  # MTCNN's built ONNX graphs
    # (models/graphs.py, `cached_mtcnn_graph`); None builds them in memory at every start

    @property
    def index_path(self) -> Path:
        return self.home / INDEX_FILE

    @property
    def db_shown(self) -> str:
        """The database URL as messages and `status` show it: any password replaced by ***."""
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.db_url).render_as_string(hide_password=True)
        except Exception:  # not a URL SQLAlchemy can parse: it cannot hold a password it would use either
            return self.db_url

    @property
    def db_file(self) -> Path | None:
        """The SQLite file of the database, or None for a database server."""
        from db.session import sqlite_path

        return sqlite_path(self.db_url)


def load_config(home: str | Path | None = None, db: str | None = None, model: str | Path | None = None,
                env: Mapping[str, str] | None = None, **options) -> Config:
    """The configuration from explicit values, else the environment, else the defaults."""
    env = os.environ if env is None else env
    home_path = Path(home or env.get("FACESEARCH_HOME") or DEFAULT_HOME).expanduser().absolute()
    db_url = db or env.get("FACESEARCH_DB") or f"sqlite:///{(home_path / DB_FILE).resolve()}"  # db.session.sqlite_url
    model_path = Path(model or env.get("FACESEARCH_MODEL") or DEFAULT_MODEL).expanduser()
    options.setdefault("data_dir", Path(env.get("FACESEARCH_DATA") or "../shared/data").expanduser().absolute())
    if env.get("FACESEARCH_CACHE"):
        options.setdefault("chips_dir", Path(env["FACESEARCH_CACHE"]).expanduser().absolute() / "chips")
        options.setdefault("graphs_dir", Path(env["FACESEARCH_CACHE"]).expanduser().absolute() / "graphs")
    return Config(home=home_path, db_url=db_url, model_path=model_path, **options)
