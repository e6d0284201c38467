"""Near-duplicate detection over a whole collection, through the vector index.

Each image's nearest neighbours at or above the threshold are found with the store's own index
(a kNN query per image, sent in batches), never an n × n similarity matrix; groups are the
connected components of the "near-duplicate" relation. Work grows as n × (one indexed query),
so build the index first (an embedded store builds it at the end of each index run).
"""

from __future__ import annotations

import numpy as np

from indexer.errors import QueryError
from indexer.progress import ProgressCallback
from indexer.stores.interface import VectorStore
from search.results import DuplicateGroup


def find_duplicates(
    store: VectorStore,
    *,
    threshold: float,
    neighbours: int = 10,
    batch_size: int = 256,
    progress: ProgressCallback | None = None,
) -> list[DuplicateGroup]:
    """Find groups of near-duplicate images.

    Args:
        store: The collection.
        threshold: Image↔image cosine similarity at or above which two images are duplicates.
        neighbours: Neighbours looked up per image; a group larger than this is still found
            whole as long as its members are chained by close pairs.
        batch_size: Images queried together.
        progress: Called as ``progress(done, total)``.

    Returns:
        Groups of two or more images, largest first, then most similar first.

    Raises:
        QueryError: The threshold is not in (0, 1].
    """
    if not 0.0 < threshold <= 1.0:
        raise QueryError(f"a duplicate threshold lies in (0, 1], not {threshold}")
    total = store.count()
    parent: dict[int, int] = {}
    weakest: dict[int, float] = {}
    uris: dict[int, str] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def join(a: int, b: int, score: float) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            weakest[ra] = min(score, weakest.get(ra, 1.0), weakest.pop(rb, 1.0))
            parent[rb] = ra

    done = 0
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        found = store.search_batch(
            np.stack([v for _, v in batch]), limit=neighbours + 1, score_threshold=threshold
        )
        for (point_id, _), neighbours_found in zip(batch, found, strict=True):
            own_uri = uris[point_id]
            for hit in neighbours_found:
                # Frames of one video look alike by nature: a video is no duplicate of itself.
                if (
                    hit.id != point_id
                    and hit.score >= threshold
                    and str(hit.payload.get("uri", "")) != own_uri
                ):
                    uris.setdefault(hit.id, str(hit.payload.get("uri", "")))
                    join(point_id, hit.id, min(hit.score, 1.0))
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress(done, total)

    for point in store.scroll(batch_size=max(batch_size, 256), with_vectors=True):
        if point.vector is None:
            continue
        uris[point.id] = str(point.payload.get("uri", ""))
        batch.append((point.id, point.vector))
        if len(batch) >= batch_size:
            flush()
    flush()

    members: dict[int, list[int]] = {}
    for point_id in list(parent):
        members.setdefault(find(point_id), []).append(point_id)
    for root in list(members):
        if root not in members[root]:
            members[root].append(root)
    groups = [
        DuplicateGroup(sorted(ids), [uris[i] for i in sorted(ids)], weakest.get(root, 1.0))
        for root, ids in members.items()
        if len(ids) > 1
    ]
    return sorted(groups, key=lambda g: (-len(g.ids), -g.score, g.ids[0]))
