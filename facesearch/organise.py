"""Organising a library, the public Python API: group the faces no one has named into clusters, name a cluster,
move faces between people, say a face is not someone, merge two people, draw a contact sheet per cluster.

Like `facesearch.api`, every function takes a `Config`; those that need the extractor's model info accept an
`extractor` and load the shipped one otherwise (no photo is decoded or embedded here except for contact
sheets, which crop the faces from the photo files). Corrections are kept in the database and respected by
`who`, `search`, `export` and `cluster` from then on (see `indexer.library`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from facesearch import home, thresholds
from facesearch.answers import UNKNOWN
from facesearch.build import check_name
from facesearch.config import Config
from facesearch.drawing import contact_sheets
from facesearch.errors import CorrectionRefused, InvalidName
from indexer.errors import LibraryError
from indexer.library import (
    ClusterReport, ClusterSummary, Named, cluster_faces, list_clusters, merge_people, move_faces,
    name_cluster, reject_faces,
)
from indexer.pipeline import FaceExtractor

__all__ = ["cluster", "clusters", "name", "move", "reject", "merge", "contact_sheets", "ClusterReport",
           "ClusterSummary", "Named", "DEFAULT_MIN_SIZE"]

DEFAULT_MIN_SIZE = 2  # faces a group needs to become a cluster (a single face is no group)


def cluster(config: Config, *, min_size: int = DEFAULT_MIN_SIZE, extractor: FaceExtractor | None = None,
            on_wait: Callable[[str], None] | None = None) -> ClusterReport:
    """Group the gallery faces that no one has named (and that match no one) into clusters, at the threshold
    in use: new faces join existing clusters, the rest form new clusters of at least `min_size` faces.
    Existing clusters and people are never reshuffled. See `indexer.library.cluster_faces`."""
    if min_size < 1:
        raise CorrectionRefused(f"the minimum cluster size must be at least 1, not {min_size}")
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait) as gallery:
        return cluster_faces(gallery, thresholds.threshold(config, extractor), config.k, min_size)


def clusters(config: Config, *, extractor: FaceExtractor | None = None) -> list[ClusterSummary]:
    """Every cluster, largest first, with its faces (most typical first) and their photos."""
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False) as gallery:
        return list_clusters(gallery)


def _correct(config: Config, extractor: FaceExtractor | None, on_wait: Callable[[str], None] | None, action):
    """Run `action(gallery)` under the home's write lock; a LibraryError becomes CorrectionRefused."""
    home.require_database(config)
    extractor = extractor or home.load_extractor(config)
    with home.gallery(config, extractor.info, create=False, writes=True, on_wait=on_wait) as gallery:
        try:
            return action(gallery)
        except LibraryError as e:
            raise CorrectionRefused(str(e)) from None


def name(cluster_id: int, person: str, config: Config, *, extractor: FaceExtractor | None = None,
         on_wait: Callable[[str], None] | None = None) -> Named:
    """Give the faces of a cluster to `person` (new, or added to someone enrolled) and drop the cluster; faces
    rejected for `person` stay unnamed."""
    person = check_name(person)
    return _correct(config, extractor, on_wait, lambda g: name_cluster(g, cluster_id, person))


def move(face_ids: Sequence[int], person: str, config: Config, *, extractor: FaceExtractor | None = None,
         on_wait: Callable[[str], None] | None = None) -> Named:
    """Give faces to `person` (created if new), or to no one when `person` is UNKNOWN. The person a face is
    taken from is remembered as one it is not."""
    target = None if person.strip().lower() == UNKNOWN else check_name(person)
    moved = _correct(config, extractor, on_wait, lambda g: move_faces(g, face_ids, target))
    return moved if target is not None else Named(UNKNOWN, moved.faces, False)


def reject(face_ids: Sequence[int], person: str, config: Config, *, extractor: FaceExtractor | None = None,
           on_wait: Callable[[str], None] | None = None) -> int:
    """Record that faces are not `person`; returns the number of new rejections. From then on no command
    names these faces after `person`, and a face given to them is taken back."""
    person = check_name(person)
    return _correct(config, extractor, on_wait, lambda g: reject_faces(g, face_ids, person))


def merge(sources: Sequence[str], target: str, config: Config, *, extractor: FaceExtractor | None = None,
          on_wait: Callable[[str], None] | None = None) -> Named:
    """Make `sources` one person with `target` (created if new: merging one person into a new name renames
    them). Their enrolled and given faces, and their corrections, go to `target`."""
    target = check_name(target)
    sources = [s.strip() for s in sources]
    if not sources or all(s == target for s in sources):
        raise InvalidName(f"name at least one person other than {target!r} to merge into them")
    return _correct(config, extractor, on_wait, lambda g: merge_people(g, sources, target))
