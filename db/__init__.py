"""What is remembered: the SQLAlchemy tables (photos, faces, people, model versions, clusters, corrections) and
sessions.

`db` imports only SQLAlchemy and the standard library; it knows nothing of images or vectors beyond bytes.
"""
from db.schema import (
    ENROLLED, ENROLLED_FACE, FAILED, INDEXED, INDEXED_FACE, Base, ClusterFaceRow, ClusterRow, FaceRow, ModelRow,
    PersonRow, PhotoRow, RejectionRow,
)
from db.errors import DbError, SchemaTooNew
from db.migrations import SCHEMA_VERSION, schema_version
from db.session import (
    clear_write_ahead_log, connect, has_tables, session_factory, sqlite_path, sqlite_url, vacuum_deleted_rows,
)

__all__ = [
    "ENROLLED", "ENROLLED_FACE", "FAILED", "INDEXED", "INDEXED_FACE", "Base", "FaceRow", "ModelRow",
    "PersonRow", "PhotoRow", "ClusterRow", "ClusterFaceRow", "RejectionRow", "clear_write_ahead_log", "connect",
    "has_tables", "session_factory", "sqlite_path", "sqlite_url", "vacuum_deleted_rows", "SCHEMA_VERSION",
    "DbError", "SchemaTooNew", "schema_version",
]
