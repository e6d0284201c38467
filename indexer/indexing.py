"""Keep a store in step with a source of images: plan, prepare, embed, write, remove, finish.

Each step is a function of its own so that callers can orchestrate them differently: in this
process (:func:`index_source`), or as Prefect tasks, locally or on a Dask cluster
(:mod:`pipelines.index_flow`). The steps make a run incremental and resumable:

- **plan**: an image whose size and mtime equal the stored ones is unchanged and costs one
  ``stat``; a changed one is re-read, and re-embedded only if its content hash differs;
- **write**: each batch goes to a Parquet shard and then to the store, under ids derived from
  the URI, so a run killed at any point loses at most the batches in flight and the next run
  neither duplicates nor re-embeds what was stored;
- **skip**: a file that cannot be decoded is skipped, reported, remembered with its size and
  mtime, and retried only once it changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import IndexSettings
from indexer.discover import DiscoveryProblem, discover
from indexer.embed import Embedder
from indexer.parquet_store import ParquetShardWriter
from indexer.prepare import ImageJob, PreparedBatch, SkippedImage, prepare_batches
from indexer.schema import ImageRecord
from indexer.skip_report import SkipReport
from indexer.store import PayloadFilter, VectorStore

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` as images are done."""

MTIME_TOLERANCE = 1e-5
"""Seconds: Qdrant Edge keeps about 16 significant digits of a float payload, so an mtime of
1.8e9 s comes back up to ~3e-7 s off."""


@dataclass
class IndexPlan:
    """What an index run must do, found by comparing the source with the store.

    Attributes:
        new: Images the store does not hold.
        changed: Images whose size or mtime differ from the stored ones, with the stored hash.
        unchanged: Images stored with the same size and mtime.
        known_bad: Images skipped by an earlier run and not changed since.
        vanished: Ids of stored images under the source's folder that are gone.
        seen_ids: Ids of every image of the source.
    """

    new: list[ImageRecord] = field(default_factory=list)
    changed: list[ImageJob] = field(default_factory=list)
    unchanged: list[ImageRecord] = field(default_factory=list)
    known_bad: list[SkippedImage] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    seen_ids: set[int] = field(default_factory=set)

    @property
    def jobs(self) -> list[ImageJob]:
        """The images to read: new ones, then changed ones."""
        return [ImageJob(record) for record in self.new] + self.changed


@dataclass
class IndexReport:
    """The outcome of an index run; :meth:`to_dict` is ``anyshot index --json``."""

    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    skipped_images: list[SkippedImage] = field(default_factory=list)
    problems: list[DiscoveryProblem] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        """Indexed images per second of the whole run."""
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def add_batch(self, batch: PreparedBatch) -> None:
        """Count a written batch."""
        self.indexed += len(batch.records)
        self.unchanged += len(batch.same_content)
        self.skipped_images.extend(batch.skipped)
        self.skipped = len(self.skipped_images)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexReport:
        """Rebuild a report from :meth:`to_dict` (e.g. a flow run's result)."""
        return cls(
            indexed=int(data["indexed"]),
            unchanged=int(data["unchanged"]),
            removed=int(data["removed"]),
            skipped=int(data["skipped"]),
            seconds=float(data["seconds"]),
            skipped_images=[
                SkippedImage(s["uri"], s["reason"]) for s in data.get("skipped_images", [])
            ],
            problems=[DiscoveryProblem(p["path"], p["reason"]) for p in data.get("problems", [])],
        )

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


def same_mtime(stored: object, record: ImageRecord) -> bool:
    """True when a stored mtime equals the file's, within what the store's floats keep."""
    return isinstance(stored, int | float) and abs(stored - record.mtime) <= MTIME_TOLERANCE


def discover_source(
    source: str | Path, settings: IndexSettings
) -> tuple[list[ImageRecord], list[DiscoveryProblem]]:
    """Find the images of a folder, list file or single image.

    Raises:
        SourceError: The source does not exist or cannot be read.
    """
    problems: list[DiscoveryProblem] = []
    records = list(
        discover(
            source,
            include_hidden=settings.include_hidden,
            follow_symlinks=settings.follow_symlinks,
            on_problem=problems.append,
        )
    )
    return records, problems


def source_scope(source: str | Path) -> str | None:
    """The URI prefix a folder source covers, for removals; None for lists and single files."""
    path = Path(source).expanduser()
    return str(path.absolute()).rstrip("/") + "/" if path.is_dir() else None


def plan_index(
    records: Iterable[ImageRecord],
    store: VectorStore,
    *,
    scope: str | None = None,
    skip_report: SkipReport | None = None,
    lookup_batch: int = 1024,
) -> IndexPlan:
    """Compare discovered images with what the store holds.

    Args:
        records: The images of the source.
        store: The store to compare with.
        scope: URI prefix that the source covers; None means no removal is planned.
        skip_report: Files that earlier runs could not decode.
        lookup_batch: Ids looked up per store request.

    Returns:
        The plan.
    """
    plan = IndexPlan()
    seen = plan.seen_ids
    batch: list[tuple[int, ImageRecord]] = []

    def classify() -> None:
        stored = {p.id: p.payload for p in store.retrieve([pid for pid, _ in batch])}
        for pid, record in batch:
            payload = stored.get(pid)
            bad = skip_report.unchanged_entry(record) if skip_report else None
            if bad is not None:
                plan.known_bad.append(bad)
            elif payload is None:
                plan.new.append(record)
            elif payload.get("size") == record.size and same_mtime(payload.get("mtime"), record):
                plan.unchanged.append(record)
            else:
                plan.changed.append(ImageJob(record, payload.get("sha256") or None))
        batch.clear()

    for record in records:
        pid = record.id  # a hash of the URI: computed once per record
        if pid in seen:
            continue
        seen.add(pid)
        batch.append((pid, record))
        if len(batch) >= lookup_batch:
            classify()

    if batch:
        classify()
    if scope is not None:
        plan.vanished = [
            p.id
            for p in store.scroll(where=PayloadFilter(uri_prefix=scope))
            if p.id not in seen and str(p.payload.get("uri", "")).startswith(scope)
        ]
    return plan


def embed_batch(embedder: Embedder, batch: PreparedBatch) -> np.ndarray:
    """Embed the decoded images of a prepared batch."""
    return embedder.embed_pixels(batch.pixels)


def write_batch(
    store: VectorStore,
    batch: PreparedBatch,
    vectors: np.ndarray,
    parquet: ParquetShardWriter | None = None,
) -> None:
    """Store one embedded batch: its Parquet shard first, then the points.

    Files whose content did not change get their new size and mtime without re-embedding.
    """
    if batch.records:
        ids = [record.id for record in batch.records]
        if parquet is not None:
            parquet.write(ids, vectors, batch.payloads)
        store.upsert(ids, vectors, batch.payloads)
    for update in batch.same_content:
        store.set_payload(
            [ImageRecord(update["uri"]).id], {"size": update["size"], "mtime": update["mtime"]}
        )
    for skipped in batch.skipped:
        logger.warning("skipped %s: %s", skipped.uri, skipped.reason)


def finish_index(
    store: VectorStore, report: IndexReport, plan: IndexPlan, skip_report: SkipReport | None
) -> None:
    """Remove vanished images, remember skipped files, and build the search index.

    A changed file that no longer decodes keeps its previous vector: bad input never loses
    indexed data.
    """
    store.delete(plan.vanished)
    report.removed = len(plan.vanished)
    # Idempotent, so that a retried finish does not count the known bad files twice.
    known = set(plan.known_bad)
    fresh = [s for s in report.skipped_images if s not in known]
    report.skipped_images = fresh + plan.known_bad
    report.skipped = len(report.skipped_images)
    if skip_report is not None:
        skip_report.save(report.skipped_images, plan.seen_ids)
    store.optimize()
    store.flush()


def index_source(
    source: str | Path,
    *,
    embedder: Embedder,
    store: VectorStore,
    settings: IndexSettings,
    parquet_dir: Path | None = None,
    state_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> IndexReport:
    """Index a folder, list file or single image into ``store``, in this process.

    Images are decoded in worker processes ahead of the model (``settings.workers``).

    Raises:
        SourceError: The source does not exist or cannot be read.
        ModelMismatchError: The store was built by another model.
        StoreError: The store failed.
    """
    started = time.perf_counter()
    report = IndexReport()
    records, report.problems = discover_source(source, settings)
    store.bind_model(embedder.identity)
    skip_report = SkipReport(state_dir) if state_dir is not None else None
    plan = plan_index(records, store, scope=source_scope(source), skip_report=skip_report)
    report.unchanged = len(plan.unchanged)
    parquet = ParquetShardWriter(parquet_dir, embedder.identity) if parquet_dir else None
    jobs = plan.jobs
    done = 0
    if progress:
        progress(0, len(jobs))
    pipeline = embedder.pixel_pipeline(max_pixels=settings.max_image_pixels)
    for batch in prepare_batches(
        jobs, pipeline, batch_size=settings.batch_size, workers=settings.workers
    ):
        embed_started = time.perf_counter()
        vectors = embed_batch(embedder, batch)
        report.embed_seconds += time.perf_counter() - embed_started
        write_batch(store, batch, vectors, parquet)
        report.add_batch(batch)
        done += len(batch)
        if progress:
            progress(done, len(jobs))
    finish_index(store, report, plan, skip_report)
    report.seconds = time.perf_counter() - started
    return report
