"""The tables: photos, faces, people, model versions, clusters of unnamed faces and the corrections users made
(SQLAlchemy 2.0 typed declarative).

The database is the source of truth; the FAISS index is a cache rebuilt from the `faces.vector` column.
Vectors are stored as raw little-endian float32 bytes (no pickle), landmarks as JSON.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, PrimaryKeyConstraint, String, Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# photos.status
INDEXED = "indexed"  # part of the gallery: every face in it was detected and stored as kind INDEXED_FACE
ENROLLED = "enrolled"  # only used to enroll a person: just the enrolled face is stored, it is not in the gallery
FAILED = "failed"  # could not be decoded; `error` says why

# faces.kind
ENROLLED_FACE = "enrolled"  # the face that enrolled a person (person_id set)
INDEXED_FACE = "indexed"  # a face found in a gallery photo (person_id set only once someone assigns it)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    """An extractor version whose vectors are in the database, with its calibrated threshold."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(200), unique=True)
    dim: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Float)  # cosine distance under which two faces are one person
    threshold_far: Mapped[float] = mapped_column(Float)  # false-accept rate `threshold` was calibrated for
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PhotoRow(Base):
    """One photo file, identified by the sha256 of its bytes (so a moved photo keeps its identity)."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # hex digest of the file's bytes
    path: Mapped[str] = mapped_column(Text)  # absolute path where it was last seen
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)  # pixels, as decoded (EXIF orientation applied)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # INDEXED, ENROLLED or FAILED
    error: Mapped[str | None] = mapped_column(Text)  # why it failed, for FAILED
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    faces: Mapped[list[FaceRow]] = relationship(back_populates="photo", cascade="all, delete-orphan",
                                                passive_deletes=True)

    __table_args__ = (Index("ix_photos_status", "status"),)


class PersonRow(Base):
    """A named person; their enrolled faces are the reference for `who` and `search`."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    faces: Mapped[list[FaceRow]] = relationship(back_populates="person")


class FaceRow(Base):
    """One face in one photo: where it is, how sure the detector was, and its vector under one model."""

    __tablename__ = "faces"

    id: Mapped[int] = mapped_column(primary_key=True)  # also the face's id in the FAISS index
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    # box in pixels of the photo as decoded: x0, y0 inclusive, x1, y1 exclusive
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[list] = mapped_column(JSON)  # [[x, y]] * 5 pixels: eyes, nose, mouth corners
    score: Mapped[float] = mapped_column(Float)  # detector confidence, 0..1
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # dim little-endian float32, unit length
    model_version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))  # ENROLLED_FACE or INDEXED_FACE
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    photo: Mapped[PhotoRow] = relationship(back_populates="faces")
    person: Mapped[PersonRow | None] = relationship(back_populates="faces")

    __table_args__ = (
        Index("ix_faces_photo", "photo_id"),
        Index("ix_faces_person", "person_id"),
        Index("ix_faces_model", "model_version"),
        Index("ix_faces_kind", "kind"),  # schema version 2 (db/migrations.py)
    )


class ClusterRow(Base):
    """A group of gallery faces that no one has named yet and that look like one person (`facesearch cluster`).

    Its id is what users name it by (`facesearch name CLUSTER NAME`), so it never changes: new faces join an
    existing cluster, and a cluster is only dropped when it is named, or emptied by moving its faces away.
    """

    __tablename__ = "clusters"  # schema version 3

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClusterFaceRow(Base):
    """A face's membership of a cluster: at most one cluster per face, and only while the face has no person."""

    __tablename__ = "cluster_faces"  # schema version 3

    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))

    __table_args__ = (Index("ix_cluster_faces_cluster", "cluster_id"),)


class RejectionRow(Base):
    """A correction: a user said this face is not this person. `who`, `search`, `export`, `cluster` and
    `name` never give the face that person's name again (until the user moves it to them)."""

    __tablename__ = "face_rejections"  # schema version 3

    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (PrimaryKeyConstraint("face_id", "person_id"), Index("ix_face_rejections_person", "person_id"))
