"""A snapshot in parts, for a collection that a server holds: one shard or one document at a time.

``anyshot export``/``load`` against a running ``anyshot serve`` move the collection between the
server's store and a folder on the caller's machine, over HTTP. No server path ever crosses: the
server hands out one page of points as the bytes of a Parquet shard (:func:`export_page`) and
the documents a snapshot carries (:func:`indexer.snapshot_documents.snapshot_content`), and it
takes one shard's bytes (:func:`load_shard`) or a documents file's content
(:func:`load_documents`) at a time.

What arrives is as untrusted as a snapshot folder: it goes through exactly the checks of
:func:`indexer.transfer.load_collection` (every shard's integrity and model, every row) and of
:func:`indexer.snapshot_documents.read_documents` (every concept), because it is handed to them
as a one-shard snapshot in a private temporary folder.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.errors import QueryError
from indexer.schema import POINT_ID_MAX
from indexer.snapshot_documents import DOCUMENTS_FILE, add_concepts, read_documents
from indexer.stores.interface import VectorStore
from search.messages import UPLOADED_SHARD

if TYPE_CHECKING:
    from indexer.transfer import LoadReport

UPLOAD_NAME = "part-00000000000000000000-upload.parquet"
"""The name an uploaded shard gets in its temporary snapshot folder."""


@dataclass(frozen=True)
class ShardPage:
    """One page of an export: the points after an id, as one Parquet shard.

    Attributes:
        data: The shard file's bytes; None when no point comes after ``after``.
        points: How many points the shard holds.
        checksum: The checksum the shard carries (``sha256:...`` over its values).
        next_after: The ``after`` of the next page; None on the last page.
        total: Points in the collection (for progress).
    """

    data: bytes | None
    points: int
    checksum: str | None
    next_after: int | None
    total: int


def export_page(
    store: VectorStore, *, after: int | None, limit: int, reserve_free_mb: int
) -> ShardPage:
    """The points of ``store`` with ids above ``after`` (all: None), at most ``limit`` of them,
    in id order, as one Parquet shard (vectors, payloads, tags and their scores).

    Args:
        store: The store.
        after: The last id of the previous page; None for the first page.
        limit: The most points in the page.
        reserve_free_mb: Disk space the temporary shard file leaves free.

    Raises:
        StoreNotFoundError: The store holds no collection.
        QueryError: A limit below 1.
    """
    import pyarrow.parquet as pq

    from indexer.parquet_store import CHECKSUM_METADATA_KEY, ParquetShardWriter

    if limit < 1:
        raise QueryError(f"limit must be at least 1, not {limit}")
    identity = store.require_model()
    total = store.count()
    start = None if after is None else after + 1
    if start is not None and start > POINT_ID_MAX:
        return ShardPage(None, 0, None, None, total)
    points = []
    for point in store.scroll(batch_size=min(limit + 1, 4096), with_vectors=True, start=start):
        points.append(point)
        if len(points) > limit:
            break
    if not points:
        return ShardPage(None, 0, None, None, total)
    following = points[limit:]
    points = points[:limit]
    with tempfile.TemporaryDirectory(prefix="anyshot-export-") as folder:
        writer = ParquetShardWriter(folder, identity, reserve_free_mb=reserve_free_mb)
        vectors = np.stack([point.vector for point in points])
        path = writer.write([p.id for p in points], vectors, [p.payload for p in points])
        checksum = (pq.read_schema(path).metadata or {}).get(CHECKSUM_METADATA_KEY)
        data = path.read_bytes()
    return ShardPage(
        data=data,
        points=len(points),
        checksum=checksum.decode() if checksum else None,
        next_after=points[-1].id if following else None,
        total=total,
    )


def load_shard(store: VectorStore, data: bytes, *, trust: Sequence[str] = ()) -> LoadReport:
    """Load one shard's bytes, checked as a shard of a snapshot folder is.

    The report calls the shard :data:`~search.messages.UPLOADED_SHARD`.

    Args:
        store: Where the good rows go; an empty store takes the shard's model.
        data: The bytes of one Parquet shard.
        trust: Folders and origins to add to the store's trusted roots (checked by the caller
            against what it may trust).

    Raises:
        QueryError: No bytes.
        StoreReadOnlyError: The store may not be written.
    """
    from indexer.transfer import load_collection

    if not data:
        raise QueryError("the body is empty: send one Parquet shard")
    store.require_writable()
    with tempfile.TemporaryDirectory(prefix="anyshot-load-") as folder:
        path = Path(folder) / UPLOAD_NAME
        path.write_bytes(data)
        report = load_collection(folder, store, trust=trust)
    for bad in report.bad_shards:
        bad["path"] = UPLOADED_SHARD
    for row in report.rejected_rows:
        row["shard"] = UPLOADED_SHARD
    return report


def load_documents(store: VectorStore, content: dict[str, Any]) -> LoadReport:
    """Add the concepts of a snapshot's documents (the content of its ``documents.json``),
    checked as a snapshot folder's are; load the shards first, so that the store has a model.

    Raises:
        StoreReadOnlyError: The store may not be written.
    """
    from indexer.transfer import LoadReport

    store.require_writable()
    with tempfile.TemporaryDirectory(prefix="anyshot-load-") as folder:
        (Path(folder) / DOCUMENTS_FILE).write_text(json.dumps(content), encoding="utf-8")
        verdict = read_documents(folder, store.model())
    report = LoadReport(rejected_documents=verdict.rejected)
    report.concepts = add_concepts(store, verdict.concepts)
    report.points = store.count()
    return report
