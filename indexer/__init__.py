"""Folders to gallery: scanning, reading photos (`Photo`), batching, the FAISS vector index, and keeping the
index and the database in step (`Gallery`, `check_gallery`)."""
from indexer.check import CheckReport, check_gallery, read_saved_index, repair_index
from indexer.gallery import (
    BatchWrite, Counts, EnrollResult, Gallery, KnownPhoto, PersonCount, StoredFace, count_rows,
)
from indexer.photos import Photo, decoded, read_photo, reason_of
from indexer.pipeline import (
    DEFAULT_BATCH_SIZE, EmbeddedFace, EnrolCheck, EnrollReport, IndexReport, Pipeline, ReembedReport,
    enroll_photos, index_paths, reembed_stale,
)
from indexer.scan import PHOTO_SUFFIXES, Scan, hash_file, is_photo, scan
from indexer.vectors import EXACT, IvfStep, Scale, Sidecar, VectorIndex, from_bytes, to_bytes

__all__ = [
    "CheckReport", "check_gallery", "read_saved_index", "repair_index",
    "BatchWrite", "Counts", "EnrollResult", "Gallery", "KnownPhoto", "PersonCount", "StoredFace", "count_rows",
    "Photo", "decoded", "read_photo", "reason_of",
    "DEFAULT_BATCH_SIZE", "EmbeddedFace", "EnrolCheck", "EnrollReport", "IndexReport", "Pipeline",
    "ReembedReport", "enroll_photos", "index_paths", "reembed_stale", "PHOTO_SUFFIXES", "Scan", "hash_file",
    "is_photo", "scan", "EXACT", "IvfStep", "Scale", "Sidecar", "VectorIndex", "from_bytes", "to_bytes",
]
