"""Prepare images for the model in worker processes, ahead of inference.

Reading, hashing, decoding (with JPEG draft), resizing and cropping run in a pool of worker
processes, batches ahead of the model, so that inference never waits for images. Workers send
back small uint8 arrays (N, S, S, 3); the model's process only scales and normalises them.

No file can stop a run: each file has a deadline (a timer in the worker interrupts a read or
decode that takes too long); a worker that dies (a decoder crash) or hangs past its batch's
deadline costs that batch a redo, one file at a time in a fresh worker, where the file that
kills its worker is skipped with a reason. Workers die with the process that started them
(``kill -9`` of ``anyshot index`` leaves no orphans).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from indexer.access import AccessPolicy
from indexer.decode import decode_image, read_image_bytes, read_metadata
from indexer.errors import ImageDecodeError
from indexer.schema import ImagePayload, ImageRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SkippedImage:
    """An image that was not indexed, and why."""

    uri: str
    reason: str
    size: int = -1
    mtime: float = 0.0


@dataclass(frozen=True, slots=True)
class ImageJob:
    """One image to prepare; ``known_sha256`` is the stored hash of a changed file, if any."""

    record: ImageRecord
    known_sha256: str | None = None


@dataclass
class PreparedBatch:
    """Images ready for the model, and what happened to the others of the batch.

    Attributes:
        records: The decoded images' records, aligned with ``pixels`` and ``payloads``.
        pixels: uint8 array (N, S, S, 3), resized and cropped for the model.
        payloads: Store payloads of the decoded images.
        same_content: Changed files (size or mtime) whose content hash is the stored one:
            their payloads need updating, their vectors do not.
        skipped: Images that could not be read or decoded.
    """

    records: list[ImageRecord] = field(default_factory=list)
    pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), dtype=np.uint8))
    payloads: list[dict[str, Any]] = field(default_factory=list)
    same_content: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.same_content) + len(self.skipped)


_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class ResizeCrop:
    """open_clip's PIL preprocessing for the common modes, without importing torch in workers.

    ``shortest`` resizes the short side to ``size`` and centre-crops (torchvision's ``Resize``
    + ``CenterCrop``, same rounding); ``squash`` resizes to ``size`` x ``size``.
    """

    size: int
    mode: str = "shortest"
    interpolation: str = "bicubic"

    def __call__(self, image: Image.Image) -> Image.Image:
        size, resample = self.size, _RESAMPLING[self.interpolation]
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.mode == "squash":
            return image.resize((size, size), resample)
        width, height = image.size
        if width <= height:
            new_width, new_height = size, int(size * height / width)
        else:
            new_width, new_height = int(size * width / height), size
        if (new_width, new_height) != (width, height):
            image = image.resize((new_width, new_height), resample)
        left = round((new_width - size) / 2.0)
        top = round((new_height - size) / 2.0)
        return image.crop((left, top, left + size, top + size))

    @classmethod
    def supports(cls, mode: str, interpolation: str) -> bool:
        """True when this class reproduces open_clip's preprocessing of that kind."""
        return mode in {"shortest", "squash"} and interpolation in _RESAMPLING


@dataclass(frozen=True)
class PixelPipeline:
    """The part of a model's preprocessing that works on PIL images; picklable for workers.

    Attributes:
        pil_steps: Resize, crop and mode conversion (the model's transforms before ToTensor).
        target_size: Decode JPEGs at no less than this size (Pillow ``draft``).
        max_pixels: Refuse images with more pixels (decompression bombs).
        access: What may be read (roots, URLs, download deadline, size cap).
        decode_timeout: Seconds one file may take to read and decode; None: no limit. Enforced
            where a timer signal can interrupt (the main thread of a process: the workers, or
            a CLI run without workers).
    """

    pil_steps: Callable[[Image.Image], Image.Image]
    target_size: int
    max_pixels: int
    access: AccessPolicy = field(default_factory=AccessPolicy)
    decode_timeout: float | None = None

    def prepare(self, jobs: Sequence[ImageJob]) -> PreparedBatch:
        """Read, hash, decode and resize a batch of images; bad ones are skipped, not raised."""
        batch = PreparedBatch()
        arrays: list[np.ndarray] = []
        for job in jobs:
            record = job.record
            try:
                with decode_deadline(self.decode_timeout):
                    prepared = self._prepare_one(job)
            except ImageDecodeError as exc:
                batch.skipped.append(skipped_image(record, exc.reason))
                continue
            except DecodeTimeout as exc:
                batch.skipped.append(skipped_image(record, exc.reason))
                continue
            except Exception as exc:  # a resize of a degenerate image, say: skip, never crash
                batch.skipped.append(skipped_image(record, f"cannot prepare: {exc}"))
                continue
            if isinstance(prepared, dict):  # the stored content: new size, mtime, metadata
                batch.same_content.append(
                    {"uri": record.uri, "size": record.size, "mtime": record.mtime, **prepared}
                )
                continue
            pixels, payload = prepared
            arrays.append(pixels)
            batch.records.append(record)
            batch.payloads.append(payload)
        if arrays:
            batch.pixels = np.stack(arrays)
        return batch

    def _prepare_one(self, job: ImageJob) -> tuple[np.ndarray, dict[str, Any]] | dict[str, Any]:
        """The pixels and payload of one image; only its metadata when its content is the
        stored one."""
        record = job.record
        data = read_image_bytes(record.uri, access=self.access)
        # Only a changed file is hashed before decoding (to skip the decode when its content
        # is the same); decode_image hashes every file it decodes anyway.
        if job.known_sha256 is not None and hashlib.sha256(data).hexdigest() == job.known_sha256:
            return read_metadata(data, uri=record.uri)
        image = decode_image(
            data,
            uri=record.uri,
            target_size=self.target_size,
            max_pixels=self.max_pixels,
            with_metadata=True,
        )
        pixels = np.asarray(self.pil_steps(image.image), dtype=np.uint8)
        payload = ImagePayload(
            uri=record.uri,
            size=record.size,
            mtime=record.mtime,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            format=image.format,
        ).to_dict()
        payload.update(image.metadata)
        return pixels, payload


def skipped_image(record: ImageRecord, reason: str) -> SkippedImage:
    """The skip of ``record`` for ``reason``, with the size and mtime that discovery saw."""
    return SkippedImage(record.uri, reason, record.size, record.mtime)


class DecodeTimeout(BaseException):
    """A file's read and decode ran past its deadline.

    A BaseException, so that the ``except Exception`` around untrusted decoders does not turn
    it into "corrupt image".
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.reason = f"took longer than {seconds:g} s to read and decode"


@contextlib.contextmanager
def decode_deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`DecodeTimeout` in the block if it runs longer than ``seconds``.

    Uses a real-time interval timer (``SIGALRM``), which interrupts blocking reads and returns
    to Python between a decoder's chunks. Only the main thread of a process can take signals;
    elsewhere, or with ``seconds`` None, the block runs without a deadline.
    """
    if (
        not seconds
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    armed = True

    def on_alarm(signum: int, frame: object) -> None:
        if armed:  # an alarm that lands after the block is ignored
            raise DecodeTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


def default_workers() -> int:
    """Decoding processes: one per core beyond the one the model's main thread needs, up to 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 2) - 1))


def split_batches(jobs: Sequence[ImageJob], size: int) -> list[list[ImageJob]]:
    """Split jobs into consecutive lists of at most ``size``."""
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


FIRST_BATCH = 16
"""Images in the first batch decoding workers hand over (see :func:`ramped_batches`)."""


def ramped_batches(jobs: Sequence[ImageJob], size: int) -> list[list[ImageJob]]:
    """Split jobs into batches of 16, 32, 64, ... up to ``size``, then ``size``.

    The model waits for the first batch while the workers start and decode it; a small first
    batch starts the model ~0.6 s sooner on 2 cores (128 photos take 0.7 s to decode), and
    the batches grow before the workers' head start runs out.
    """
    batches, start, current = [], 0, min(FIRST_BATCH, size)
    while start < len(jobs):
        batches.append(list(jobs[start : start + current]))
        start += current
        current = min(current * 2, size)
    return batches


WORKER_START_GRACE = 30.0
"""Seconds allowed beyond the files' deadlines for a worker to start (imports) and reply."""

WORKER_CRASHED = "the decoding process crashed on this file"
"""Why a file whose worker died while preparing it alone was skipped."""


def prepare_batches(
    jobs: Sequence[ImageJob],
    pipeline: PixelPipeline,
    *,
    batch_size: int,
    workers: int | None = None,
    prefetch: int = 2,
) -> Iterator[PreparedBatch]:
    """Prepare ``jobs`` in batches, in order, in worker processes ahead of the consumer.

    A batch whose worker dies or hangs (past ``pipeline.decode_timeout`` per file, plus a
    grace) is redone one file at a time in a fresh worker; the file that kills its worker or
    runs past its deadline there is skipped with a reason. Later batches go to a fresh pool.

    Args:
        jobs: Images to prepare.
        pipeline: What to do to each image.
        batch_size: Images per batch.
        workers: Worker processes; 0 prepares in this process; None picks a default.
        prefetch: Batches in flight per worker.

    Yields:
        Prepared batches in the order of ``jobs``: one per ``batch_size`` jobs, the
        first ones smaller when workers decode (:func:`ramped_batches`).
    """
    workers = default_workers() if workers is None else workers
    if workers == 0 or len(jobs) <= batch_size:
        for chunk in split_batches(jobs, batch_size):
            yield pipeline.prepare(chunk)
        return
    chunks = ramped_batches(jobs, batch_size)
    pool = _start_pool(workers)
    try:
        pending: deque[tuple[list[ImageJob], Future[PreparedBatch]]] = deque()
        upcoming = iter(chunks)

        def fill() -> None:
            for chunk in upcoming:
                pending.append((chunk, pool.submit(pipeline.prepare, chunk)))
                if len(pending) >= workers * prefetch:
                    break

        fill()
        while pending:
            chunk, future = pending.popleft()
            try:
                done = future.result(timeout=_batch_limit(pipeline, len(chunk)))
            except (BrokenProcessPool, FutureTimeout) as exc:
                logger.warning(
                    "a decoding process %s; redoing its batch one file at a time",
                    "hung" if isinstance(exc, FutureTimeout) else "died",
                )
                _stop_pool(pool)
                done = _prepare_one_by_one(chunk, pipeline)
                pool = _start_pool(workers)
                pending = deque((c, pool.submit(pipeline.prepare, c)) for c, _ in pending)
            fill()
            yield done
    finally:
        _stop_pool(pool, wait=True)


def _batch_limit(pipeline: PixelPipeline, files: int) -> float | None:
    if not pipeline.decode_timeout:
        return None
    return pipeline.decode_timeout * files + WORKER_START_GRACE


def _prepare_one_by_one(chunk: list[ImageJob], pipeline: PixelPipeline) -> PreparedBatch:
    """Prepare each job in its own call in a one-worker pool, replaced when a file kills it."""
    parts: list[PreparedBatch] = []
    pool = _start_pool(1)
    try:
        for job in chunk:
            future = pool.submit(pipeline.prepare, [job])
            try:
                parts.append(future.result(timeout=_batch_limit(pipeline, 1)))
                continue
            except BrokenProcessPool:
                reason = WORKER_CRASHED
            except FutureTimeout:
                reason = f"took longer than {pipeline.decode_timeout:g} s to read and decode"
            logger.warning("skipped %s: %s", job.record.uri, reason)
            parts.append(PreparedBatch(skipped=[skipped_image(job.record, reason)]))
            _stop_pool(pool)
            pool = _start_pool(1)
    finally:
        _stop_pool(pool, wait=True)
    return merge_batches(parts)


def merge_batches(parts: Sequence[PreparedBatch]) -> PreparedBatch:
    """One batch holding the images of ``parts``, in order."""
    merged = PreparedBatch()
    arrays = [part.pixels for part in parts if part.records]
    for part in parts:
        merged.records.extend(part.records)
        merged.payloads.extend(part.payloads)
        merged.same_content.extend(part.same_content)
        merged.skipped.extend(part.skipped)
    if arrays:
        merged.pixels = np.concatenate(arrays)
    return merged


def _start_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent holds torch's thread pools, which a forked child inherits
    # in an unusable state.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )


def _stop_pool(pool: ProcessPoolExecutor, *, wait: bool = False) -> None:
    """Shut a pool down; without ``wait``, kill its workers first (one may hang or be dead)."""
    if not wait:
        # ProcessPoolExecutor cannot kill its workers before Python 3.14 (kill_workers()).
        for process in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                process.kill()
    pool.shutdown(wait=wait, cancel_futures=True)


PARENT_POLL_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process exit when ``parent_pid`` (the process that started it) dies.

    On Linux the kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``); everywhere
    a daemon thread also watches ``os.getppid()``. Without this, ``kill -9`` of an index run
    would leave its workers, and multiprocessing's resource tracker that they keep open,
    running under init.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os._exit(1)
    watcher = threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="anyshot-parent-watch", daemon=True
    )
    watcher.start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)
