"""Connecting to the database: one engine per URL, tables created on first use, SQLite tuned for sharing."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from db.migrations import prepare

CORE_TABLES = ["model_versions", "photos", "people", "faces"]  # what every schema version has

# How long a writer waits for another process's lock before giving up, in milliseconds.
BUSY_TIMEOUT_MS = 30_000


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of an SQLite file."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL, or None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def connect(url: str, create: bool = True) -> Engine:
    """An engine for `url` with the tables in place: created when `create` and missing, upgraded in place
    when they are of an older schema version (`db.migrations`; SchemaTooNew when newer).

    SQLite files get write-ahead logging (readers never block the writer), a busy timeout, foreign keys and
    secure deletion (deleted content is zeroed). Any other SQLAlchemy URL works the same way, e.g.
    `postgresql+psycopg://user@host/facesearch` (with `pip install 'facesearch[postgres]'`).
    """
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000} if is_sqlite else {})
    if is_sqlite:
        event.listen(engine, "connect", _tune_sqlite)
    try:
        prepare(engine, create)
    except BaseException:
        engine.dispose()
        raise
    return engine


def clear_write_ahead_log(engine: Engine) -> None:
    """Copy an SQLite file's write-ahead log into the database and empty it, so that no earlier version of
    deleted rows stays in the log file; nothing for another database."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def vacuum_deleted_rows(engine: Engine, tables: Sequence[str]) -> str | None:
    """On PostgreSQL, rewrite `tables` without the row versions a delete left in their files (`VACUUM FULL`:
    plain VACUUM marks their space free but can leave their bytes); None when done or not needed (SQLite
    zeroes deleted rows itself), else why it could not be done (the rights it needs, for example)."""
    if engine.dialect.name != "postgresql":
        return None
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.exec_driver_sql(f'VACUUM FULL "{table}"')
    except Exception as e:  # noqa: BLE001 - any refusal is reported, the delete itself is done
        return str(getattr(e, "orig", None) or e).strip().splitlines()[0]
    return None


def has_tables(engine: Engine) -> bool:
    """Whether the facesearch tables exist in this database."""
    names = set(inspect(engine).get_table_names())
    return set(CORE_TABLES) <= names


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _tune_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # deleted rows are overwritten with zeros, so a forgotten person's name does not linger in free pages
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
