"""Folders to gallery: scanning, content hashing, batching, the FAISS vector index, and keeping the index
and the database in step (`Gallery`, `check_gallery`)."""
from indexer.check import CheckReport, check_gallery, read_saved_index, repair_index
from indexer.gallery import (
    BatchWrite, Counts, EmbeddedFace, EnrollItem, EnrollResult, Gallery, KnownPhoto, PersonCount, PhotoOutcome,
    StoredFace, count_rows,
)
from indexer.pipeline import (
    DEFAULT_BATCH_SIZE, EnrolCheck, EnrollReport, IndexReport, Pipeline, ReadPhoto, ReembedReport, enroll_photos,
    index_paths, read_photo, reason_of, reembed_stale,
)
from indexer.scan import PHOTO_SUFFIXES, Scan, hash_file, is_photo, scan
from indexer.vectors import EXACT, IvfStep, Scale, Sidecar, VectorIndex, from_bytes, to_bytes

__all__ = [
    "CheckReport", "check_gallery", "read_saved_index", "repair_index",
    "BatchWrite", "Counts", "EmbeddedFace", "EnrollItem", "EnrollResult", "Gallery", "KnownPhoto", "PersonCount",
    "PhotoOutcome", "StoredFace", "count_rows", "DEFAULT_BATCH_SIZE", "EnrolCheck", "EnrollReport", "IndexReport",
    "Pipeline", "ReadPhoto", "ReembedReport", "enroll_photos", "index_paths", "read_photo", "reason_of",
    "reembed_stale", "PHOTO_SUFFIXES", "Scan", "hash_file", "is_photo", "scan", "EXACT", "IvfStep", "Scale",
    "Sidecar", "VectorIndex", "from_bytes", "to_bytes",
]
