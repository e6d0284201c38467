"""Move a collection between stores through Parquet shards, without re-embedding.

``export_collection`` writes a consistent snapshot of a store (what it holds now) as shards;
``load_collection`` upserts shards into a store, older shards first, so the newest version of
an image wins.

A snapshot may come from anywhere, so loading trusts nothing in it: each shard must pass its
integrity checks (:func:`indexer.parquet_store.read_shard`) and be of the store's model, else
it is a bad shard, reported and skipped; each row of a good shard must pass the row checks of
:mod:`indexer.shard_checks`, else it is rejected with a reason. The good ones are loaded.
The collection's registered concepts travel beside the shards, in ``documents.json``
(:mod:`indexer.snapshot_documents`), and go through the same kind of checks: a concept of the
wrong dimension or with non-finite vectors is reported and never stored. Tags and their
scores travel in the shards' payload columns. Neither direction carries the store's trusted
roots (:mod:`indexer.trusted_roots`): only ``trust`` given to :func:`load_collection`
(``anyshot load --trust``) adds to them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import ParquetError
from indexer.parquet_store import (
    ParquetBatch,
    ParquetShardWriter,
    ShardError,
    list_shards,
    read_shard,
)
from indexer.progress import ProgressCallback
from indexer.schema import ModelIdentity
from indexer.shard_checks import check_rows
from indexer.snapshot_documents import DOCUMENTS_FILE, add_concepts, read_documents, write_documents
from indexer.stores.interface import VectorStore
from indexer.trusted_roots import root_of, trust_roots

REJECTED_SAMPLES = 20
"""How many rejected rows a :class:`LoadReport` describes one by one."""
_SHOWN_URI_CHARS = 200


@dataclass
class LoadReport:
    """What :func:`load_collection` took and what it refused.

    Attributes:
        loaded: Rows upserted (an image in several shards counts once per shard).
        rejected: Rows of good shards refused by the row checks.
        rejected_rows: The first :data:`REJECTED_SAMPLES` of them: ``{shard, row, uri,
            reason}``.
        bad_shards: Shards skipped whole: ``{path, reason}``.
        shards: Shards found.
        unchecked_shards: Good shards without a checksum (written by older versions), read
            with row checks only.
        points: Points in the store afterwards.
        trusted: The store's trusted roots afterwards (when ``trust`` was given).
        concepts: Names of the concepts taken from the snapshot's ``documents.json``.
        rejected_documents: Concepts and documents of the snapshot refused: ``{document,
            name, reason}`` (``name`` is the concept's, or None for a whole document).
    """

    loaded: int = 0
    rejected: int = 0
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)
    bad_shards: list[dict[str, str]] = field(default_factory=list)
    shards: int = 0
    unchecked_shards: int = 0
    points: int = 0
    trusted: list[str] = field(default_factory=list)
    concepts: list[str] = field(default_factory=list)
    rejected_documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every shard, every row and every concept was taken."""
        return not self.rejected and not self.bad_shards and not self.rejected_documents

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


def export_collection(
    store: VectorStore,
    folder: str | os.PathLike[str],
    *,
    batch_size: int = 10_000,
    progress: ProgressCallback | None = None,
) -> int:
    """Write every point of ``store`` (vector and payload, tags and tag scores included) as
    Parquet shards into ``folder``, and its concepts into ``folder/documents.json``.

    The store's trusted roots are never written.

    Returns:
        The number of points written.

    Raises:
        StoreNotFoundError: The store holds no collection.
        ParquetError: The folder already holds a snapshot, or cannot be written.
    """
    identity = store.require_model()
    if list_shards(folder) or os.path.lexists(os.path.join(folder, DOCUMENTS_FILE)):
        raise ParquetError(f"{folder} already holds Parquet shards: export into an empty folder")
    writer = ParquetShardWriter(folder, identity)
    total = store.count()
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
            progress(written, max(total, written))

    for point in store.scroll(batch_size=min(batch_size, 4096), with_vectors=True):
        ids.append(point.id)
        vectors.append(point.vector)
        payloads.append(point.payload)
        if len(ids) >= batch_size:
            flush()
    if ids:
        flush()
    try:
        write_documents(store, folder)
    except OSError as exc:
        raise ParquetError(f"cannot write {DOCUMENTS_FILE} in {folder}: {exc}") from exc
    return written


def check_shard(
    path: Path, model: ModelIdentity | None, report: LoadReport
) -> tuple[ParquetBatch, list[int]] | None:
    """Read one shard of a snapshot and check it and its rows, noting what is refused.

    Args:
        path: The shard.
        model: The model of the store it goes into (None: an empty store, which takes the
            model of its first good shard).
        report: Where a bad shard, rejected rows and a missing checksum are counted.

    Returns:
        The shard and the rows that may be loaded; None when none may (a bad shard, or every
        row refused).
    """
    try:
        shard = read_shard(path)
    except ShardError as exc:
        report.bad_shards.append({"path": str(path), "reason": exc.reason})
        return None
    if model is not None and not shard.model.is_compatible(model):
        reason = f"embeddings of model {shard.model.label!r}, but the store holds {model.label!r}"
        report.bad_shards.append({"path": str(path), "reason": reason})
        return None
    verdict = check_rows(shard, shard.model.dim)
    report.rejected += len(verdict.rejected)
    for row, reason in verdict.rejected:
        if len(report.rejected_rows) < REJECTED_SAMPLES:
            uri = shard.payloads[row].get("uri")
            report.rejected_rows.append(
                {
                    "shard": str(path),
                    "row": row,
                    "uri": uri[:_SHOWN_URI_CHARS] if isinstance(uri, str) else None,
                    "reason": reason,
                }
            )
    if shard.checksum is None:
        report.unchecked_shards += 1
    return (shard, verdict.kept) if verdict.kept else None


def load_collection(
    folder: str | os.PathLike[str],
    store: VectorStore,
    *,
    trust: Iterable[str] = (),
    progress: ProgressCallback | None = None,
) -> LoadReport:
    """Upsert the good rows of the good shards of ``folder`` into ``store``, and add the
    snapshot's good concepts to the store's.

    Args:
        folder: A folder of ``part-*.parquet`` shards (``anyshot export``, a store's
            ``parquet/``, or a snapshot from elsewhere).
        store: Where the rows go; an empty store takes the model of the first good shard.
        trust: Folders and http(s) origins to add to the store's trusted roots, so that the
            HTTP API may serve the loaded images from there.
        progress: Called as ``progress(shards done, shards)`` after each shard.

    Returns:
        What was loaded, rejected and skipped (:class:`LoadReport`).

    Raises:
        ParquetError: The folder holds no shards.
        ConfigError: A ``trust`` entry is neither a folder nor an http(s) origin.
        StoreReadOnlyError: The store may not be written.
        StoreError: The store failed (a full disk, ...): what was loaded before stays.
    """
    store.require_writable()
    roots = [root_of(entry) for entry in trust]  # refuse a bad entry before loading anything
    shards = list_shards(folder)
    if not shards:
        raise ParquetError(f"{folder}: no Parquet shards (part-*.parquet) to load")
    report = LoadReport(shards=len(shards))
    model = store.model()
    for done, path in enumerate(shards):
        if progress and done:  # the shard before this one is done (taken or skipped)
            progress(done, len(shards))
        checked = check_shard(path, model, report)
        if checked is None:
            continue
        shard, kept = checked
        if model is None:
            store.bind_model(shard.model)
            model = shard.model
        store.upsert(
            [int(shard.ids[row]) for row in kept],
            shard.vectors[kept],
            [shard.payloads[row] for row in kept],
        )
        report.loaded += len(kept)
    if progress:
        progress(len(shards), len(shards))
    if report.loaded:
        store.optimize()
        store.flush()
    documents = read_documents(folder, store.model())
    report.rejected_documents = documents.rejected
    report.concepts = add_concepts(store, documents.concepts)
    if roots and store.model() is not None:
        report.trusted = list(trust_roots(store, roots))
    report.points = store.count()
    return report
