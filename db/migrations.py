"""Schema versions: a database records the version of its tables, and an older one is upgraded in place.

The table `schema_info` holds one row, the schema version. A new database is created at `SCHEMA_VERSION`
directly. A database from before versioning (the tables exist, `schema_info` does not) is version 1, the
schema those releases created. Opening a database at version v < SCHEMA_VERSION runs the migrations v+1 ..
SCHEMA_VERSION in order, each with the version bump in one transaction, so an upgrade killed midway leaves the
database at the last version it completed, and the next open goes on from there. A database newer than this
code is refused with a message, never written to.

To change the tables: change `db/schema.py`, add a migration function below that brings a database of the
previous version to the new tables (plain SQL that SQLite and PostgreSQL both run, or branches on
`connection.dialect.name`), register it in `MIGRATIONS` and raise `SCHEMA_VERSION`. The tests build a
database of every earlier version and upgrade it.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, Integer, inspect, text
from sqlalchemy.orm import Mapped, mapped_column

from db.errors import SchemaTooNew
from db.schema import Base, ClusterFaceRow, ClusterRow, RejectionRow


class SchemaInfo(Base):
    """The schema version of this database: one row."""

    __tablename__ = "schema_info"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


def _v2_face_kind_index(conn: Connection) -> None:
    """Version 2: an index on faces.kind (gallery faces and enrolled faces are counted and listed apart)."""
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_faces_kind ON faces (kind)"))


def _v3_clusters_and_corrections(conn: Connection) -> None:
    """Version 3: clusters of unnamed faces and the corrections users made (three new tables; no table that
    existed changes). The tables are created from their definitions in `db/schema.py`; a later version that
    changes one of them must say so in its own migration."""
    Base.metadata.create_all(conn, tables=[ClusterRow.__table__, ClusterFaceRow.__table__, RejectionRow.__table__])


# version -> the function that brings a database of version - 1 to it
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2_face_kind_index, 3: _v3_clusters_and_corrections}
SCHEMA_VERSION = max(MIGRATIONS, default=1)
FIRST_VERSION = 1  # the tables as created before schema_info existed


def schema_version(engine: Engine) -> int | None:
    """The database's schema version: None when it has no facesearch tables yet."""
    names = set(inspect(engine).get_table_names())
    if SchemaInfo.__tablename__ not in names:
        return FIRST_VERSION if "faces" in names else None
    with engine.connect() as conn:
        found = conn.execute(text("SELECT version FROM schema_info WHERE id = 1")).scalar()
    return int(found) if found is not None else FIRST_VERSION


def prepare(engine: Engine, create: bool = True,
            migrations: dict[int, Callable[[Connection], None]] | None = None) -> int | None:
    """Create the tables of a new database (when `create`) or upgrade an older one; returns the version it is
    at afterwards (None: no tables and `create` False). SchemaTooNew for a database of a later version."""
    migrations = MIGRATIONS if migrations is None else migrations
    latest = max(migrations, default=FIRST_VERSION)
    version = schema_version(engine)
    if version is None:
        if not create:
            return None
        with engine.begin() as conn:
            _lock_for_upgrade(conn)
            if not inspect(conn).has_table("faces"):  # else another process created the tables meanwhile
                Base.metadata.create_all(conn)
                conn.execute(text("INSERT INTO schema_info (id, version) VALUES (1, :v)"), {"v": latest})
        version = schema_version(engine)
    if version > latest:
        raise SchemaTooNew(f"the database holds schema version {version}, newer than this facesearch "
                           f"understands ({latest}): upgrade facesearch (pip install -U facesearch)")
    for target in range(version + 1, latest + 1):
        with engine.begin() as conn:
            _lock_for_upgrade(conn)
            SchemaInfo.__table__.create(conn, checkfirst=True)  # a version-1 database has none yet
            current = conn.execute(text("SELECT version FROM schema_info WHERE id = 1")).scalar()
            if current is not None and current >= target:
                continue  # another process upgraded it meanwhile
            migrations[target](conn)
            if current is None:
                conn.execute(text("INSERT INTO schema_info (id, version) VALUES (1, :v)"), {"v": target})
            else:
                conn.execute(text("UPDATE schema_info SET version = :v WHERE id = 1"), {"v": target})
    return latest


# any constant: the key of PostgreSQL's transaction-level advisory lock that serialises upgrades
_UPGRADE_LOCK_KEY = 0x66616365


def _lock_for_upgrade(conn: Connection) -> None:
    """Make this transaction the only upgrade running, and (on SQLite) a real transaction around DDL too."""
    if conn.dialect.name == "sqlite":
        # the sqlite3 driver opens no transaction before DDL statements; an explicit one makes a migration all
        # or nothing, and IMMEDIATE takes the write lock now, so two upgraders run one after the other
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
