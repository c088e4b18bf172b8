"""The errors of `db/` a user can meet, under one base class (SQLAlchemy's own errors pass through as they are,
with their cause; the front names the database in its message)."""
from __future__ import annotations


class DbError(Exception):
    """A database facesearch cannot use as it is."""


class SchemaTooNew(DbError, RuntimeError):
    """The database was written by a newer facesearch than this one."""
