"""The video half of an index run: plan which videos to read, read them, store their moments.

A video is stored as one point per kept frame (:mod:`indexer.video`), under
:func:`~indexer.video.frame_id` of its URI and time; every frame's payload carries the video's
record: ``uri``, ``size``, ``mtime``, ``sha256`` (here the hash of the first and last MiB and
the size, :func:`~indexer.video.video_hash`), ``frames`` (how many frames the video has in the
store), plus ``kind: "video"``, ``t``, ``duration``, ``width``, ``height``, ``format``,
``codec``.

The run is incremental and resumable as for images:

- a video whose frames all carry its size and mtime, and are as many as ``frames`` says, is
  unchanged; anything else (changed on disk, or a run killed while it wrote) is read again;
- a changed video whose content hash is the stored one only gets its new size and mtime;
- a re-read video's frames are written first, then its old frames that are not among the new
  ones are deleted: a run killed between the two leaves a video that the next run reads again,
  never duplicates, and a changed video that no longer decodes keeps its old frames;
- frames of a vanished video go with the vanished images (:func:`indexer.indexing.plan_index`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.access import AccessPolicy
from indexer.errors import VideoDecodeError
from indexer.parquet_store import ParquetShardWriter
from indexer.prepare import PixelPipeline, SkippedImage, skipped_image
from indexer.schema import ImageRecord, uri_path
from indexer.stores.interface import PayloadFilter, StoredPoint, VectorStore
from indexer.video import (
    DecodedVideo,
    FrameChoice,
    frame_id,
    read_video_frames,
    video_format,
    video_hash,
)

if TYPE_CHECKING:
    from PIL import Image

    from indexer.indexing import ImageModel
    from indexer.schema import ModelIdentity

logger = logging.getLogger(__name__)

VIDEO_KIND = "video"
"""The payload's ``kind`` of a video frame (images have no ``kind``)."""


@dataclass(frozen=True)
class VideoJob:
    """A video to read: new, changed, or left incomplete by a run that was stopped.

    Attributes:
        record: The file.
        stored_ids: The ids of the frames the store holds for it now.
        known_hash: The stored content hash when the stored frames are complete, else None.
    """

    record: ImageRecord
    stored_ids: tuple[int, ...] = ()
    known_hash: str | None = None


@dataclass
class VideoCounts:
    """What the video half of a run did.

    Attributes:
        videos: Videos read and stored by this run.
        frames: Frames stored for them.
        partial: ``(uri, reason)`` of videos stored only in part (a corrupt stretch, a
            truncated file, the deadline, the frame cap).
        skipped: Videos with no frame that could be indexed.
        same_content: Changed videos whose content was the stored one (size and mtime
            updated).
        decode_seconds: Time spent reading frames.
        embed_seconds: Time spent embedding them.
    """

    videos: int = 0
    frames: int = 0
    partial: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)
    same_content: int = 0
    decode_seconds: float = 0.0
    embed_seconds: float = 0.0


def stored_frames(store: VectorStore, uri: str) -> list[StoredPoint]:
    """The stored frames of the video at ``uri``."""
    return [
        point
        for point in store.scroll(where=PayloadFilter(uri_prefix=uri))
        if point.payload.get("uri") == uri and point.payload.get("kind") == VIDEO_KIND
    ]


def classify_video(
    record: ImageRecord, frames: list[StoredPoint], same_mtime: Any
) -> VideoJob | None:
    """Whether a video must be read: None when its stored frames are complete and current."""
    if not frames:
        return VideoJob(record)
    payloads = [point.payload for point in frames]
    counts = {p.get("frames") for p in payloads}
    hashes = {p.get("sha256") for p in payloads}
    complete = counts == {len(frames)} and len(hashes) == 1
    current = all(
        p.get("size") == record.size and same_mtime(p.get("mtime"), record) for p in payloads
    )
    if complete and current:
        return None
    known = str(hashes.pop()) if complete and hashes else None
    return VideoJob(record, tuple(point.id for point in frames), known)


def index_videos(
    jobs: list[VideoJob],
    *,
    embedder: ImageModel,
    store: VectorStore,
    pipeline: PixelPipeline,
    choice: FrameChoice,
    batch_size: int,
    parquet: ParquetShardWriter | None = None,
    access: AccessPolicy | None = None,
) -> VideoCounts:
    """Read, embed and store the frames of videos, one video after another.

    Args:
        jobs: The videos to read (:func:`classify_video`).
        embedder: The model.
        store: Where the frames go.
        pipeline: The model's PIL steps (resize and crop).
        choice: Frame choice and limits.
        batch_size: Frames per forward pass.
        parquet: Where each video's Parquet shard goes; None: no shards.
        access: What may be read.

    Returns:
        Counts, skipped and partial videos.
    """
    counts = VideoCounts()
    for job in jobs:
        try:
            _index_video(
                job, embedder, store, pipeline, choice, batch_size, parquet, access, counts
            )
        except VideoDecodeError as exc:
            counts.skipped.append(skipped_image(job.record, exc.reason))
            logger.warning("skipped %s: %s", job.record.uri, exc.reason)
    return counts


@dataclass
class VideoPart:
    """What one stretch of a video gave: its kept frames' vectors, and what reading it said.

    Attributes:
        start: Where the stretch starts (seconds).
        video: The read, without frames (they went to the model): ``times`` (one per vector,
            ascending), ``duration``, ``width``, ``height``, ``codec``, ``notes`` (why the
            stretch was read only in part), ``decode_seconds``.
        vectors: ``(len(video.times), dim)`` unit vectors.
        embed_seconds: Time spent embedding.
        identity: The model that embedded the frames (a worker's, checked by the caller).
    """

    start: float
    video: DecodedVideo
    vectors: np.ndarray
    embed_seconds: float = 0.0
    identity: ModelIdentity | None = None


def video_file(record: ImageRecord, access: AccessPolicy | None = None) -> str:
    """The local path of a video that may be read.

    Raises:
        VideoDecodeError: Not a local file, or outside what ``access`` allows.
    """
    path = uri_path(record.uri)
    if path is None:
        raise VideoDecodeError(record.uri, "videos are indexed from local files only")
    refusal = (access or AccessPolicy()).path_refusal(os.path.realpath(path))
    if refusal is not None:
        raise VideoDecodeError(record.uri, refusal)
    return path


def content_to_read(
    job: VideoJob, path: str, store: VectorStore, counts: VideoCounts
) -> str | None:
    """The video's content hash when its frames must be read; None when the content is the
    stored one (its frames then only get the new size and mtime).

    Raises:
        VideoDecodeError: The file cannot be read.
    """
    try:
        content = video_hash(path)
    except OSError as exc:
        raise VideoDecodeError(job.record.uri, f"cannot read: {exc.strerror or exc}") from exc
    if job.known_hash is not None and content == job.known_hash:
        store.set_payload(
            list(job.stored_ids), {"size": job.record.size, "mtime": job.record.mtime}
        )
        counts.same_content += 1
        return None
    return content


def read_video_part(
    path: str,
    *,
    embedder: ImageModel,
    pipeline: PixelPipeline,
    choice: FrameChoice,
    batch_size: int,
    start: float = 0.0,
    end: float | None = None,
) -> VideoPart:
    """Read and embed the frames of one stretch of a video (all of it by default).

    Raises:
        VideoDecodeError: Nothing could be read from the stretch.
    """
    times: list[float] = []
    pending: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    embed_seconds = 0.0

    def embed_pending() -> None:
        nonlocal embed_seconds
        started = time.perf_counter()
        vectors.append(embedder.embed_pixels(np.stack(pending)))
        embed_seconds += time.perf_counter() - started
        pending.clear()

    def on_frame(t: float, image: Image.Image) -> None:
        times.append(t)
        pending.append(np.asarray(pipeline.pil_steps(image), dtype=np.uint8))
        if len(pending) >= batch_size:
            embed_pending()

    decoded = read_video_frames(
        path, choice, short_side=pipeline.target_size, on_frame=on_frame, start=start, end=end
    )
    if pending:
        embed_pending()
    # Seeking may meet a time twice: one frame per time.
    first_of: dict[float, int] = {}
    for index, t in enumerate(times):
        first_of.setdefault(t, index)
    decoded.times = sorted(first_of, key=float)
    matrix = np.concatenate(vectors)[[first_of[t] for t in decoded.times]]
    return VideoPart(start, decoded, matrix, embed_seconds, embedder.identity)


def join_parts(uri: str, parts: list[VideoPart | str], choice: FrameChoice) -> VideoPart:
    """One video's stretches as one: frames in time order, none closer than ``min_gap`` to the
    one before (stretch edges), at most ``max_frames``.

    Args:
        uri: The video.
        parts: Its stretches in time order; a string says why a stretch gave no frame (it
            becomes a note: the video is then stored in part).
        choice: The run's frame choice.

    Raises:
        VideoDecodeError: No stretch gave a frame.
    """
    read = [part for part in parts if isinstance(part, VideoPart)]
    if not read:
        raise VideoDecodeError(uri, next(part for part in parts if isinstance(part, str)))
    if len(parts) == 1:
        return read[0]
    notes: list[str] = []
    rows: list[tuple[float, np.ndarray]] = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            notes.append(f"stretch {index + 1} of {len(parts)}: {part}")
            continue
        notes += [f"stretch {index + 1} of {len(parts)}: {note}" for note in part.video.notes]
        rows += zip(part.video.times, part.vectors, strict=True)
    rows.sort(key=lambda row: row[0])
    kept: list[tuple[float, np.ndarray]] = []
    for t, vector in rows:
        if not kept or t >= kept[-1][0] + choice.min_gap - 1e-6:
            kept.append((t, vector))
    if len(kept) > choice.max_frames:
        cut = kept[choice.max_frames][0]
        notes.append(f"frame cap video_max_frames ({choice.max_frames}) reached at {cut:.1f} s")
        kept = kept[: choice.max_frames]
    first = read[0].video
    joined = DecodedVideo(
        times=[t for t, _ in kept],
        duration=max(part.video.duration for part in read),
        width=first.width,
        height=first.height,
        codec=first.codec,
        notes=notes,
        decode_seconds=sum(part.video.decode_seconds for part in read),
    )
    return VideoPart(
        0.0,
        joined,
        np.stack([vector for _, vector in kept]),
        sum(part.embed_seconds for part in read),
        read[0].identity,
    )


def store_video(
    job: VideoJob,
    path: str,
    content: str,
    part: VideoPart,
    store: VectorStore,
    parquet: ParquetShardWriter | None,
    counts: VideoCounts,
) -> None:
    """Write a video's frames (each payload carries the whole video's record and frame count),
    then delete its stored frames that are not among them."""
    record = job.record
    video = part.video
    base = {
        "uri": record.uri,
        "size": record.size,
        "mtime": record.mtime,
        "sha256": content,
        "width": video.width,
        "height": video.height,
        "format": video_format(path),
        "tags": [],
        "kind": VIDEO_KIND,
        "duration": round(video.duration, 3),
        "frames": len(video.times),
        "codec": video.codec,
    }
    ids = [frame_id(record.uri, t) for t in video.times]
    payloads = [{**base, "t": t} for t in video.times]
    if parquet is not None:
        parquet.write(ids, part.vectors, payloads)
    store.upsert(ids, part.vectors, payloads)
    stale = sorted(set(job.stored_ids) - set(ids))
    if stale:
        store.delete(stale)
    counts.videos += 1
    counts.frames += len(ids)
    counts.decode_seconds += video.decode_seconds
    counts.embed_seconds += part.embed_seconds
    if video.notes:
        reason = "; ".join(video.notes)
        counts.partial.append((record.uri, reason))
        logger.warning("indexed %s in part: %s", record.uri, reason)


def _index_video(
    job: VideoJob,
    embedder: ImageModel,
    store: VectorStore,
    pipeline: PixelPipeline,
    choice: FrameChoice,
    batch_size: int,
    parquet: ParquetShardWriter | None,
    access: AccessPolicy | None,
    counts: VideoCounts,
) -> None:
    path = video_file(job.record, access)
    content = content_to_read(job, path, store, counts)
    if content is None:
        return
    part = read_video_part(
        path, embedder=embedder, pipeline=pipeline, choice=choice, batch_size=batch_size
    )
    store_video(job, path, content, part, store, parquet, counts)
