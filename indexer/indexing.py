"""Keep a store in step with a source of images: plan, decode, embed, write, remove.

The steps are separate functions so that callers can orchestrate them differently (one
process here; Prefect tasks in :mod:`pipelines`), and :func:`index_source` runs them in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.config import IndexSettings
from indexer.decode import DecodedImage, load_image
from indexer.discover import DiscoveryProblem, discover
from indexer.embed import Embedder
from indexer.errors import ImageDecodeError
from indexer.parquet_store import ParquetShardWriter
from indexer.schema import ImagePayload, ImageRecord
from indexer.store import PayloadFilter, VectorStore

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each batch."""


@dataclass(frozen=True)
class SkippedImage:
    """An image that was not indexed, and why."""

    uri: str
    reason: str


@dataclass
class IndexPlan:
    """What an index run must do, found by comparing the source with the store."""

    new: list[ImageRecord] = field(default_factory=list)
    changed: list[ImageRecord] = field(default_factory=list)
    unchanged: list[ImageRecord] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)

    @property
    def to_embed(self) -> list[ImageRecord]:
        """New and changed images, in source order."""
        return self.new + self.changed


@dataclass
class IndexReport:
    """The outcome of an index run; keys match ``anyshot index --json``."""

    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    skipped_images: list[SkippedImage] = field(default_factory=list)
    problems: list[DiscoveryProblem] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        """Indexed images per second of the whole run."""
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """Return the summary as JSON-ready values."""
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "skipped_images": [{"uri": s.uri, "reason": s.reason} for s in self.skipped_images],
            "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
        }


MTIME_TOLERANCE = 1e-5
"""Seconds: Qdrant Edge keeps about 16 significant digits of a float payload, so an mtime of
1.8e9 s comes back up to ~3e-7 s off."""


def same_mtime(stored: object, record: ImageRecord) -> bool:
    """True when a stored mtime equals the file's, within what the store's floats keep."""
    return isinstance(stored, int | float) and abs(stored - record.mtime) <= MTIME_TOLERANCE


def plan_index(
    records: Iterable[ImageRecord],
    store: VectorStore,
    *,
    scope: str | None = None,
    lookup_batch: int = 1024,
) -> IndexPlan:
    """Compare discovered images with what the store holds.

    An image is unchanged when the stored size and mtime equal the file's; a vanished image is
    a stored point under ``scope`` (a folder prefix) that discovery did not find.

    Args:
        records: The images of the source.
        store: The store to compare with.
        scope: URI prefix that the source covers; None means no removal is planned.
        lookup_batch: Ids looked up per store request.

    Returns:
        The plan.
    """
    plan = IndexPlan()
    seen: set[int] = set()
    batch: list[ImageRecord] = []

    def flush() -> None:
        stored = {p.id: p.payload for p in store.retrieve([r.id for r in batch])}
        for record in batch:
            payload = stored.get(record.id)
            if payload is None:
                plan.new.append(record)
            elif payload.get("size") == record.size and same_mtime(payload.get("mtime"), record):
                plan.unchanged.append(record)
            else:
                plan.changed.append(record)
        batch.clear()

    for record in records:
        if record.id in seen:
            continue
        seen.add(record.id)
        batch.append(record)
        if len(batch) >= lookup_batch:
            flush()
    if batch:
        flush()
    if scope is not None:
        where = PayloadFilter(uri_prefix=scope)
        plan.vanished = [
            p.id
            for p in store.scroll(where=where)
            if p.id not in seen and str(p.payload.get("uri", "")).startswith(scope)
        ]
    return plan


def decode_records(
    records: Sequence[ImageRecord], *, target_size: int | None, max_pixels: int
) -> tuple[list[tuple[ImageRecord, DecodedImage]], list[SkippedImage]]:
    """Decode a batch of images; an image that fails is skipped with its reason, not raised."""
    decoded: list[tuple[ImageRecord, DecodedImage]] = []
    skipped: list[SkippedImage] = []
    for record in records:
        try:
            decoded.append(
                (record, load_image(record.uri, target_size=target_size, max_pixels=max_pixels))
            )
        except ImageDecodeError as exc:
            logger.warning("skipped %s: %s", record.uri, exc.reason)
            skipped.append(SkippedImage(record.uri, exc.reason))
    return decoded, skipped


def payload_of(record: ImageRecord, image: DecodedImage) -> dict[str, object]:
    """Return the store payload of a decoded image."""
    return ImagePayload(
        uri=record.uri,
        size=record.size,
        mtime=record.mtime,
        sha256=image.sha256,
        width=image.width,
        height=image.height,
        format=image.format,
    ).to_dict()


def write_batch(
    store: VectorStore,
    ids: Sequence[int],
    vectors: np.ndarray,
    payloads: Sequence[dict[str, object]],
    parquet: ParquetShardWriter | None = None,
) -> None:
    """Write one embedded batch: the Parquet shard first, then the store."""
    if not len(ids):
        return
    if parquet is not None:
        parquet.write(ids, vectors, payloads)
    store.upsert(ids, vectors, payloads)


def source_scope(source: str | Path) -> str | None:
    """The URI prefix a folder source covers, for removals; None for lists and single files."""
    path = Path(source).expanduser()
    return str(path.absolute()).rstrip("/") + "/" if path.is_dir() else None


def index_source(
    source: str | Path,
    *,
    embedder: Embedder,
    store: VectorStore,
    settings: IndexSettings,
    parquet_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> IndexReport:
    """Index a folder, list file or single image into ``store``, in this process.

    Unchanged images (same size and mtime) are not decoded again; images that vanished from a
    folder source are removed; bad images are skipped and reported.

    Raises:
        SourceError: The source does not exist or cannot be read.
        ModelMismatchError: The store was built by another model.
        StoreError: The store failed.
    """
    started = time.perf_counter()
    report = IndexReport()
    records = discover(
        source,
        include_hidden=settings.include_hidden,
        follow_symlinks=settings.follow_symlinks,
        on_problem=report.problems.append,
    )
    store.bind_model(embedder.identity)
    plan = plan_index(records, store, scope=source_scope(source))
    report.unchanged = len(plan.unchanged)
    parquet = ParquetShardWriter(parquet_dir, embedder.identity) if parquet_dir else None
    todo = plan.to_embed
    if progress:
        progress(0, len(todo))
    for start in range(0, len(todo), settings.batch_size):
        chunk = todo[start : start + settings.batch_size]
        decoded, skipped = decode_records(
            chunk, target_size=embedder.image_size, max_pixels=settings.max_image_pixels
        )
        report.skipped_images.extend(skipped)
        if decoded:
            vectors = embedder.embed_images([image.image for _, image in decoded])
            write_batch(
                store,
                [record.id for record, _ in decoded],
                vectors,
                [payload_of(record, image) for record, image in decoded],
                parquet,
            )
            report.indexed += len(decoded)
        if progress:
            progress(min(start + len(chunk), len(todo)), len(todo))
    # A changed file that no longer decodes keeps its previous vector: bad input never loses
    # indexed data. Its size/mtime differ from the stored ones, so the next run retries it.
    store.delete(plan.vanished)
    report.removed = len(plan.vanished)
    report.skipped = len(report.skipped_images)
    store.optimize()
    store.flush()
    report.seconds = time.perf_counter() - started
    return report
