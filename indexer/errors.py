"""The errors of `indexer/` a user can meet, under one base class; the front (`facesearch/`) turns them into
its own errors with advice."""
from __future__ import annotations


class IndexerError(Exception):
    """A gallery operation that cannot be done as asked."""


class LibraryError(IndexerError, ValueError):
    """A correction or a name that cannot be applied as asked; the message says why and what to do."""


class ModelChanged(IndexerError, ValueError):
    """The extractor in use does not fit what the gallery recorded for its version (another dimension)."""
