"""Move a collection between stores through Parquet shards, without re-embedding.

``export_collection`` writes a consistent snapshot of a store (what it holds now) as shards;
``load_collection`` upserts shards into a store, older shards first, so the newest version of
an image wins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from indexer.errors import ParquetError
from indexer.parquet_store import ParquetShardWriter, list_shards, read_shards
from indexer.store import VectorStore

ProgressCallback = Callable[[int], None]
"""Called with the number of points moved so far."""


def export_collection(
    store: VectorStore,
    folder: str | os.PathLike[str],
    *,
    batch_size: int = 10_000,
    progress: ProgressCallback | None = None,
) -> int:
    """Write every point of ``store`` (vector and payload) as Parquet shards into ``folder``.

    Returns:
        The number of points written.

    Raises:
        StoreNotFoundError: The store holds no collection.
        ParquetError: The folder already holds shards, or cannot be written.
    """
    identity = store.require_model()
    if list_shards(folder):
        raise ParquetError(f"{folder} already holds Parquet shards: export into an empty folder")
    writer = ParquetShardWriter(folder, identity)
    ids: list[int] = []
    vectors: list[np.ndarray] = []
    payloads: list[dict[str, Any]] = []
    written = 0

    def flush() -> None:
        nonlocal written
        writer.write(ids, np.stack(vectors), payloads)
        written += len(ids)
        ids.clear()
        vectors.clear()
        payloads.clear()
        if progress:
            progress(written)

    for point in store.scroll(batch_size=min(batch_size, 4096), with_vectors=True):
        ids.append(point.id)
        vectors.append(point.vector)
        payloads.append(point.payload)
        if len(ids) >= batch_size:
            flush()
    if ids:
        flush()
    return written


def load_collection(
    folder: str | os.PathLike[str], store: VectorStore, *, progress: ProgressCallback | None = None
) -> int:
    """Upsert every shard of ``folder`` into ``store``.

    Returns:
        The number of rows loaded (an image in several shards counts once per shard).

    Raises:
        ParquetError: The folder holds no shards, or one is unreadable.
        ModelMismatchError: The shards and the store come from different models.
    """
    if not list_shards(folder):
        raise ParquetError(f"{folder}: no Parquet shards (part-*.parquet) to load")
    loaded = 0
    for shard in read_shards(folder):
        store.bind_model(shard.model)
        store.upsert([int(i) for i in shard.ids], shard.vectors, shard.payloads)
        loaded += len(shard.ids)
        if progress:
            progress(loaded)
    store.optimize()
    store.flush()
    return loaded
