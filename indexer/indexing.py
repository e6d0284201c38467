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
  mtime, and retried only once it changes;
- **keep**: only images that are positively gone are removed. Images under a folder that
  could not be read (permissions, a dangling link to an unmounted drive, an I/O error) are
  kept and counted as unchanged, and a source folder that holds no images any more is not
  emptied in the store, unless the run prunes (``IndexSettings.prune``);
- **trust**: the run records the folders and web origins it indexed from in the store
  (:mod:`indexer.trusted_roots`), which is what a server may serve;
- **videos**: a video is planned, read and stored as a whole, one point per kept frame, after
  the images (:mod:`indexer.video_indexing`), under the same rules.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.access import AccessPolicy
from indexer.config import IndexSettings
from indexer.decode import load_image, read_image_bytes, read_metadata
from indexer.discover import DiscoveryProblem, discover
from indexer.disk_space import DEFAULT_RESERVE_MB
from indexer.errors import ImageDecodeError, SourceError
from indexer.formats import is_video_name
from indexer.ocr import OCR_VERSION, READ_SIDE
from indexer.parquet_store import ParquetShardWriter
from indexer.photo_metadata import METADATA_VERSION
from indexer.places import add_places
from indexer.precision_record import record_precision
from indexer.prepare import (
    ImageJob,
    PixelPipeline,
    PreparedBatch,
    SkippedImage,
    prepare_batches,
)
from indexer.progress import ProgressCallback
from indexer.schema import FILE_URL_PREFIX, ImageRecord, path_uri, uri_path
from indexer.skip_report import SkipReport
from indexer.stores.interface import PayloadFilter, VectorStore
from indexer.trusted_roots import roots_of_records, trust_roots
from indexer.video import FrameChoice
from indexer.video_indexing import (
    VideoCounts,
    VideoJob,
    classify_video,
    index_videos,
    stored_frames,
)

if TYPE_CHECKING:  # the model (torch) loads only where a run embeds, not with its report
    from indexer.embed import Embedder
    from indexer.image_onnx import OnnxImageModel

    ImageModel = Embedder | OnnxImageModel
    """What embeds an index run's images: the model, or its exported image tower."""

logger = logging.getLogger(__name__)

MTIME_TOLERANCE = 1e-5
"""Seconds: Qdrant Edge keeps about 16 significant digits of a float payload, so an mtime of
1.8e9 s comes back up to ~3e-7 s off."""


@dataclass(frozen=True)
class SourceScope:
    """The stored images a folder source covers: those a run over it may remove.

    Attributes:
        folder: The source folder's absolute path (not resolved).
        prefixes: The URI prefixes of images under it: the plain path (when it is UTF-8) and
            its ``file://`` form (which names that are not UTF-8 take).
    """

    folder: str
    prefixes: tuple[str, ...]

    def covers(self, uri: str) -> bool:
        """True when ``uri`` is an image under the folder."""
        return uri.startswith(self.prefixes)


@dataclass
class IndexPlan:
    """What an index run must do, found by comparing the source with the store.

    Attributes:
        new: Images the store does not hold.
        changed: Images whose size or mtime differ from the stored ones, with the stored hash.
        unchanged: Images stored with the same size and mtime.
        known_bad: Images skipped by an earlier run and not changed since.
        vanished: Ids of stored images under the source's folder that are gone.
        kept: Ids of stored images under the source's folder that were not seen but lie under
            a folder or link that could not be read: not removed.
        seen_ids: Ids of every image of the source.
        roots: The folders (real paths) and web origins the run indexes from.
        stale_metadata: Unchanged images whose payload lacks the photo metadata of this
            version (:data:`~indexer.photo_metadata.METADATA_VERSION`): stored before
            metadata was read; :func:`refresh_metadata` adds it without re-embedding.
        missing_text: Unchanged images whose text was never looked for (no ``ocr_version``
            in their payload): a run with OCR on reads them (:func:`read_texts`).
        videos: Videos to read: new, changed, or left incomplete (:mod:`indexer.video_indexing`).
        video_uris: The URIs of every video of the source (their frames are not vanished).
        vanished_frames: How many of ``vanished`` are frames of videos, and of how many
            videos: ``removed`` counts files, a video once.
    """

    new: list[ImageRecord] = field(default_factory=list)
    changed: list[ImageJob] = field(default_factory=list)
    unchanged: list[ImageRecord] = field(default_factory=list)
    known_bad: list[SkippedImage] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    seen_ids: set[int] = field(default_factory=set)
    roots: set[str] = field(default_factory=set)
    stale_metadata: list[ImageRecord] = field(default_factory=list)
    missing_text: list[ImageRecord] = field(default_factory=list)
    videos: list[VideoJob] = field(default_factory=list)
    video_uris: set[str] = field(default_factory=set)
    vanished_frames: tuple[int, int] = (0, 0)

    @property
    def jobs(self) -> list[ImageJob]:
        """The images to read: new ones, then changed ones."""
        return [ImageJob(record) for record in self.new] + self.changed


@dataclass
class OcrCounts:
    """What reading the text inside images did in one run (``ocr`` of the run's JSON).

    Attributes:
        looked: Images whose text was looked for.
        gated: Of those, images the gate let pass without reading (no text region found).
        with_text: Images in which text was found (payload key ``text``).
        cut: Images whose text was cut at a limit (characters, regions or time).
        failed: Images that could not be read now (tried again by the next run).
        seconds: Time spent reading text.
    """

    looked: int = 0
    gated: int = 0
    with_text: int = 0
    cut: int = 0
    failed: int = 0
    seconds: float = 0.0


@dataclass
class IndexReport:
    """The outcome of an index run; :meth:`to_dict` is ``anyshot index --json``.

    Attributes:
        indexed: Files embedded and stored by this run: images, and videos (also counted in
            ``videos``).
        unchanged: Images already stored as they are, and images kept because their folder
            could not be read.
        removed: Stored images removed because their files are gone.
        skipped: Files not indexed: images that could not be read or decoded, and files
            discovery had to leave out (special files, broken links, refused list entries).
        skipped_images: The images that could not be read or decoded, with reasons.
        problems: What discovery had to leave out (files and folders), with reasons.
        ocr: What reading text did (:class:`OcrCounts`), when the run read text.
        videos: Videos read and stored by this run.
        frames: Frames of those videos stored (one point each).
        partial_videos: ``(uri, reason)`` of videos stored only in part.
        video_decode_seconds, video_embed_seconds: Where the videos' time went.
    """

    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    skipped_images: list[SkippedImage] = field(default_factory=list)
    problems: list[DiscoveryProblem] = field(default_factory=list)
    ocr: OcrCounts | None = None
    videos: int = 0
    frames: int = 0
    partial_videos: list[tuple[str, str]] = field(default_factory=list)
    video_decode_seconds: float = 0.0
    video_embed_seconds: float = 0.0

    def add_videos(self, counts: VideoCounts) -> None:
        """Count what the video half of the run did."""
        self.indexed += counts.videos
        self.unchanged += counts.same_content
        self.videos += counts.videos
        self.frames += counts.frames
        self.partial_videos.extend(counts.partial)
        self.skipped_images.extend(counts.skipped)
        self.video_decode_seconds += counts.decode_seconds
        self.video_embed_seconds += counts.embed_seconds
        self.count_skipped()

    @property
    def images_per_second(self) -> float:
        """Indexed images per second of the whole run."""
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def add_batch(self, batch: PreparedBatch) -> None:
        """Count a written batch."""
        self.indexed += len(batch.records)
        self.unchanged += len(batch.same_content)
        self.skipped_images.extend(batch.skipped)
        self.count_skipped()

    def count_skipped(self) -> None:
        """Set ``skipped`` from the skipped images and the files discovery left out."""
        self.skipped = len(self.skipped_images) + sum(not p.folder for p in self.problems)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexReport:
        """Rebuild a report from :meth:`to_dict` (e.g. a flow run's result)."""
        skipped_images = [
            SkippedImage(s["uri"], s["reason"]) for s in data.get("skipped_images", [])
        ]
        of_images = {(s.uri, s.reason) for s in skipped_images}
        return cls(
            indexed=int(data["indexed"]),
            unchanged=int(data["unchanged"]),
            removed=int(data["removed"]),
            skipped=int(data["skipped"]),
            seconds=float(data["seconds"]),
            skipped_images=skipped_images,
            problems=[
                DiscoveryProblem(p["path"], p["reason"])
                for p in data.get("problems", [])
                if (p["path"], p["reason"]) not in of_images
            ],
            ocr=OcrCounts(**data["ocr"]) if isinstance(data.get("ocr"), dict) else None,
            videos=int(data.get("videos", 0)),
            frames=int(data.get("frames", 0)),
            partial_videos=[(p["uri"], p["reason"]) for p in data.get("partial_videos", [])],
            video_decode_seconds=float(data.get("video_decode_seconds", 0.0)),
            video_embed_seconds=float(data.get("video_embed_seconds", 0.0)),
        )

    def to_dict(self) -> dict[str, object]:
        """Return the summary as JSON-ready values.

        ``problems`` lists every file or folder that was not indexed, with its reason: what
        discovery left out, then the images that could not be read or decoded (also listed,
        by URI, as ``skipped_images``).
        """
        problems = [{"path": p.path, "reason": p.reason} for p in self.problems]
        problems += [{"path": s.uri, "reason": s.reason} for s in self.skipped_images]
        ocr = {"ocr": asdict(self.ocr)} if self.ocr is not None else {}
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "skipped_images": [{"uri": s.uri, "reason": s.reason} for s in self.skipped_images],
            "problems": problems,
            **ocr,
            "videos": self.videos,
            "frames": self.frames,
            "partial_videos": [{"uri": uri, "reason": why} for uri, why in self.partial_videos],
            "video_decode_seconds": round(self.video_decode_seconds, 3),
            "video_embed_seconds": round(self.video_embed_seconds, 3),
        }


def has_current_metadata(payload: dict[str, Any]) -> bool:
    """True when a stored payload holds the photo metadata of the current version."""
    version = payload.get("meta_version")
    return isinstance(version, int) and version >= METADATA_VERSION


def refresh_metadata(
    store: VectorStore,
    records: Sequence[ImageRecord],
    *,
    access: AccessPolicy | None = None,
    batch_size: int = 256,
) -> int:
    """Add photo metadata (and places) to stored images without re-embedding them.

    Each file is read and its header parsed (its pixels are not decoded); only metadata
    keys are written, so vectors and the other keys stay as they are. A file that cannot be
    read now keeps its payload and is tried again by the next run.

    Args:
        store: The store that holds the images.
        records: The images (unchanged since they were stored).
        access: What may be read.
        batch_size: Images looked up for places at once.

    Returns:
        How many payloads were updated.
    """
    updated = 0
    for start in range(0, len(records), batch_size):
        found: list[tuple[ImageRecord, dict[str, Any]]] = []
        for record in records[start : start + batch_size]:
            try:
                data = read_image_bytes(record.uri, access=access)
            except ImageDecodeError as exc:
                logger.info("no metadata for %s now: %s", record.uri, exc.reason)
                continue
            metadata = read_metadata(data, uri=record.uri)
            if metadata:
                found.append((record, metadata))
        add_places([metadata for _, metadata in found])
        for record, metadata in found:
            store.set_payload([record.id], metadata)
        updated += len(found)
    return updated


def has_text_reading(payload: dict[str, Any]) -> bool:
    """True when a stored payload records that the image's text was looked for."""
    version = payload.get("ocr_version")
    return isinstance(version, int) and version >= OCR_VERSION


def read_texts(
    store: VectorStore,
    plan: IndexPlan,
    settings: IndexSettings,
    *,
    access: AccessPolicy | None = None,
    lookup_batch: int = 256,
) -> OcrCounts:
    """Read the text inside the images of a run that lack it, without re-embedding them.

    The images are those the run stored and the unchanged ones whose payload has no
    ``ocr_version``; each gets ``ocr_version`` and, when text was found, ``text``, one
    payload update per image, so a run stopped midway resumes where it was. An image that
    cannot be read now keeps its payload and is tried again by the next run.

    Args:
        store: The store that holds the images.
        plan: The run's plan.
        settings: ``ocr_gate``, ``ocr_seconds``, ``max_image_pixels``.
        access: What may be read.
        lookup_batch: Ids looked up per store request.

    Returns:
        Counts and time.
    """
    from indexer.ocr import (
        TextReader,
        TextReading,
    )  # the OCR engine loads only in runs that read text

    started = time.perf_counter()
    counts = OcrCounts()
    candidates = [job.record for job in plan.jobs] + plan.missing_text
    if not candidates:
        return counts
    reader = TextReader(gate=settings.ocr_gate, max_seconds=settings.ocr_seconds)
    store.index_payload_key("text")
    for start in range(0, len(candidates), lookup_batch):
        chunk = candidates[start : start + lookup_batch]
        stored = {p.id: p.payload for p in store.retrieve([r.id for r in chunk])}
        for record in chunk:
            payload = stored.get(record.id)
            if payload is None or has_text_reading(payload):
                continue  # skipped by this run, or read already
            try:
                image = load_image(
                    record.uri,
                    target_size=READ_SIDE,
                    max_pixels=settings.max_image_pixels,
                    access=access,
                ).image
            except ImageDecodeError as exc:
                counts.failed += 1
                logger.info("no text read from %s now: %s", record.uri, exc.reason)
                continue
            try:
                reading = reader.read(image)
            except Exception as exc:
                counts.failed += 1
                logger.warning("skipped the text of %s: OCR failed: %s", record.uri, exc)
                reading = TextReading("")
            counts.looked += 1
            counts.gated += reading.gated
            counts.cut += reading.cut
            update: dict[str, Any] = {"ocr_version": OCR_VERSION}
            if reading.text:
                counts.with_text += 1
                update["text"] = reading.text
            if reading.cut:
                logger.info("text of %s cut at a limit", record.uri)
            store.set_payload([record.id], update)
    counts.seconds = round(time.perf_counter() - started, 3)
    return counts


def same_mtime(stored: object, record: ImageRecord) -> bool:
    """True when a stored mtime equals the file's, within what the store's floats keep."""
    return isinstance(stored, int | float) and abs(stored - record.mtime) <= MTIME_TOLERANCE


def discover_source(
    source: str | Path, settings: IndexSettings, access: AccessPolicy | None = None
) -> tuple[list[ImageRecord], list[DiscoveryProblem]]:
    """Find the images of a folder, list file or single image.

    Args:
        source: What to index.
        settings: Hidden files, links.
        access: What may be read; None: :meth:`AccessPolicy.for_index` (anything).

    Raises:
        SourceError: The source does not exist, cannot be read or may not be read.
    """
    problems: list[DiscoveryProblem] = []
    records = list(
        discover(
            source,
            include_hidden=settings.include_hidden,
            follow_symlinks=settings.follow_symlinks,
            on_problem=problems.append,
            access=access if access is not None else AccessPolicy.for_index(settings),
        )
    )
    return records, problems


def source_scope(source: str | Path) -> SourceScope | None:
    """The stored images a folder source covers, for removals; None for lists and single files."""
    folder = os.path.abspath(os.fspath(source))
    if not os.path.isdir(folder):
        return None
    below = folder.rstrip(os.sep) + os.sep
    file_url = FILE_URL_PREFIX + urllib.parse.quote(os.fsencode(below), safe="/")
    return SourceScope(folder, tuple(dict.fromkeys((path_uri(below), file_url))))


def plan_index(
    records: Iterable[ImageRecord],
    store: VectorStore,
    *,
    scope: SourceScope | None = None,
    skip_report: SkipReport | None = None,
    problems: Sequence[DiscoveryProblem] = (),
    prune: bool = False,
    lookup_batch: int = 1024,
) -> IndexPlan:
    """Compare discovered images with what the store holds.

    Args:
        records: The images of the source.
        store: The store to compare with.
        scope: The stored images the source covers; None means no removal is planned.
        skip_report: Files that earlier runs could not decode.
        problems: What discovery could not read: stored images at or under these paths are
            kept, not removed (unless ``prune``).
        prune: Remove every stored image of the scope that was not seen.
        lookup_batch: Ids looked up per store request.

    Returns:
        The plan.
    """
    records = list(records)
    plan = IndexPlan(roots=roots_of_records(records, folder=scope.folder if scope else None))
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
                if not has_current_metadata(payload):
                    plan.stale_metadata.append(record)
                if not has_text_reading(payload):
                    plan.missing_text.append(record)
            else:
                plan.changed.append(ImageJob(record, payload.get("sha256") or None))
        batch.clear()

    for record in records:
        pid = record.id  # a hash of the URI: computed once per record
        if pid in seen:
            continue
        seen.add(pid)
        if is_video_name(record.uri):
            _plan_video(plan, record, store, skip_report)
            continue
        batch.append((pid, record))
        if len(batch) >= lookup_batch:
            classify()

    if batch:
        classify()
    if scope is not None:
        unreadable = () if prune else _unreadable_paths(problems)
        gone_frames, gone_videos = 0, set()
        for prefix in scope.prefixes:
            for point in store.scroll(where=PayloadFilter(uri_prefix=prefix)):
                uri = str(point.payload.get("uri", ""))
                if point.id in seen or not uri.startswith(prefix) or uri in plan.video_uris:
                    continue
                if _lies_under(uri_path(uri), unreadable):
                    plan.kept.append(point.id)
                else:
                    plan.vanished.append(point.id)
                    if point.payload.get("kind") == "video":
                        gone_frames += 1
                        gone_videos.add(uri)
        plan.vanished_frames = (gone_frames, len(gone_videos))
    return plan


def _plan_video(
    plan: IndexPlan, record: ImageRecord, store: VectorStore, skip_report: SkipReport | None
) -> None:
    """Classify one video: known bad, unchanged, or to read (with its stored frames)."""
    plan.video_uris.add(record.uri)
    bad = skip_report.unchanged_entry(record) if skip_report else None
    if bad is not None:
        plan.known_bad.append(bad)
        return
    job = classify_video(record, stored_frames(store, record.uri), same_mtime)
    if job is None:
        plan.unchanged.append(record)
    else:
        plan.videos.append(job)


def _unreadable_paths(problems: Sequence[DiscoveryProblem]) -> tuple[str, ...]:
    paths = (uri_path(problem.path) for problem in problems)
    return tuple(path.rstrip(os.sep) for path in paths if path)


def _lies_under(path: str | None, folders: Sequence[str]) -> bool:
    if path is None or not folders:
        return False
    return any(path == folder or path.startswith(folder + os.sep) for folder in folders)


def refuse_emptying(plan: IndexPlan, source: str | Path, *, prune: bool) -> None:
    """Stop a run that would remove every stored image of a source folder that now holds none.

    An empty source folder is more often an unmounted drive or a share that is down than a
    collection deleted on purpose, so that takes ``prune``.

    Raises:
        SourceError: No image was found, the store holds images under the folder, and the run
            does not prune.
    """
    if prune or plan.seen_ids or not plan.vanished:
        return
    count = len(plan.vanished)
    raise SourceError(
        f"{source} holds no images now, but the store holds {count} image"
        f"{'s' if count != 1 else ''} from it: not removing them all (an unmounted drive?); "
        "index with --prune (ANYSHOT_INDEX__PRUNE=true) to remove them"
    )


def embed_batch(embedder: ImageModel, batch: PreparedBatch) -> np.ndarray:
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
    add_places([*batch.payloads, *batch.same_content])
    if batch.records:
        ids = [record.id for record in batch.records]
        if parquet is not None:
            parquet.write(ids, vectors, batch.payloads)
        store.upsert(ids, vectors, batch.payloads)
    for update in batch.same_content:
        # Its new size and mtime, and the metadata read from it (stored or not before).
        store.set_payload(
            [ImageRecord(update["uri"]).id], {k: v for k, v in update.items() if k != "uri"}
        )
    for skipped in batch.skipped:
        logger.warning("skipped %s: %s", skipped.uri, skipped.reason)


def finish_index(
    store: VectorStore, report: IndexReport, plan: IndexPlan, skip_report: SkipReport | None
) -> None:
    """Remove vanished images, remember skipped files, record the run's roots, build the index.

    A changed file that no longer decodes keeps its previous vector, and images under folders
    that could not be read are kept: bad input never loses indexed data.
    """
    store.delete(plan.vanished)
    frames, videos = plan.vanished_frames
    report.removed = len(plan.vanished) - frames + videos
    # Idempotent, so that a retried finish does not count the known bad files twice.
    known = set(plan.known_bad)
    fresh = [s for s in report.skipped_images if s not in known]
    report.skipped_images = fresh + plan.known_bad
    report.count_skipped()
    if skip_report is not None:
        skip_report.save(report.skipped_images, plan.seen_ids)
    trust_roots(store, plan.roots)
    store.optimize()
    store.flush()


def pixel_pipeline(
    embedder: ImageModel, settings: IndexSettings, access: AccessPolicy | None = None
) -> PixelPipeline:
    """The decoding half of a run: the model's PIL steps, the access policy, the deadlines."""
    return embedder.pixel_pipeline(
        max_pixels=settings.max_image_pixels,
        access=access if access is not None else AccessPolicy.for_index(settings),
        decode_timeout=settings.decode_timeout,
    )


def index_source(
    source: str | Path,
    *,
    embedder: ImageModel,
    store: VectorStore,
    settings: IndexSettings,
    parquet_dir: Path | None = None,
    state_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    access: AccessPolicy | None = None,
    reserve_free_mb: int = DEFAULT_RESERVE_MB,
) -> IndexReport:
    """Index a folder, list file or single image into ``store``, in this process.

    Images are decoded in worker processes ahead of the model (``settings.workers``).

    Args:
        source: Folder, list file (text or Parquet) or image.
        embedder: The model, or its exported image tower (no torch).
        store: The store to keep in step.
        settings: Batch size, workers, hidden files, deadlines, prune.
        parquet_dir: Where each batch's Parquet shard goes; None: no shards.
        state_dir: Where the report of skipped files is kept; None: not kept.
        progress: Called as ``progress(done, total)`` as batches are done.
        access: What the run may read; None: :meth:`AccessPolicy.for_index` (anything the
            process can read; a server passes its own, narrower policy).
        reserve_free_mb: Disk space (MiB) each Parquet shard leaves free
            (``store.reserve_free_mb``).

    Raises:
        SourceError: The source does not exist, cannot be read or may not be read, or the
            run would empty the store of a source folder that holds no images (see
            :func:`refuse_emptying`).
        ModelMismatchError: The store was built by another model.
        StoreError: The store failed.
    """
    started = time.perf_counter()
    access = access if access is not None else AccessPolicy.for_index(settings)
    report = IndexReport()
    records, report.problems = discover_source(source, settings, access)
    store.bind_model(embedder.identity)
    skip_report = SkipReport(state_dir) if state_dir is not None else None
    plan = plan_index(
        records,
        store,
        scope=source_scope(source),
        skip_report=skip_report,
        problems=report.problems,
        prune=settings.prune,
    )
    refuse_emptying(plan, source, prune=settings.prune)
    report.unchanged = len(plan.unchanged) + len(plan.kept)
    parquet = (
        ParquetShardWriter(parquet_dir, embedder.identity, reserve_free_mb=reserve_free_mb)
        if parquet_dir
        else None
    )
    jobs = plan.jobs
    if jobs:
        record_precision(store, embedder.image_precision)
    done = 0
    if progress:
        progress(0, len(jobs))
    # The forward batch is measured (once per machine and model) before decoding workers
    # start: beside them the timings would be noise. A video's frames count as many.
    frames_ahead = settings.batch_size if plan.videos else 0
    embedder.image_batch_size(min(max(len(jobs), frames_ahead), settings.batch_size))
    pipeline = pixel_pipeline(embedder, settings, access)
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
    if plan.videos:
        if not jobs:
            record_precision(store, embedder.image_precision)
        report.add_videos(
            index_videos(
                plan.videos,
                embedder=embedder,
                store=store,
                pipeline=pipeline,
                choice=FrameChoice.from_settings(settings),
                batch_size=settings.batch_size,
                parquet=parquet,
                access=access,
            )
        )
    if plan.stale_metadata:
        refresh_metadata(store, plan.stale_metadata, access=access)
    if settings.ocr:
        report.ocr = read_texts(store, plan, settings, access=access)
    finish_index(store, report, plan, skip_report)
    report.seconds = time.perf_counter() - started
    return report
