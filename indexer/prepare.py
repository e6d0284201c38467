"""Prepare images for the model in worker processes, ahead of inference.

Reading, hashing, decoding (with JPEG draft), resizing and cropping run in a pool of worker
processes, batches ahead of the model, so that inference never waits for images. Workers send
back small uint8 arrays (N, S, S, 3); the model's process only scales and normalises them.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from indexer.decode import decode_image, read_image_bytes
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
        timeout: Seconds to wait for a remote image.
    """

    pil_steps: Callable[[Image.Image], Image.Image]
    target_size: int
    max_pixels: int
    timeout: float = 30.0

    def prepare(self, jobs: Sequence[ImageJob]) -> PreparedBatch:
        """Read, hash, decode and resize a batch of images; bad ones are skipped, not raised."""
        batch = PreparedBatch()
        arrays: list[np.ndarray] = []
        for job in jobs:
            record = job.record
            try:
                data = read_image_bytes(record.uri, timeout=self.timeout)
                # Only a changed file is hashed before decoding (to skip the decode when its
                # content is the same); decode_image hashes every file it decodes anyway.
                if (
                    job.known_sha256 is not None
                    and hashlib.sha256(data).hexdigest() == job.known_sha256
                ):
                    batch.same_content.append(
                        {"uri": record.uri, "size": record.size, "mtime": record.mtime}
                    )
                    continue
                image = decode_image(
                    data, uri=record.uri, target_size=self.target_size, max_pixels=self.max_pixels
                )
                pixels = np.asarray(self.pil_steps(image.image), dtype=np.uint8)
            except ImageDecodeError as exc:
                batch.skipped.append(
                    SkippedImage(record.uri, exc.reason, record.size, record.mtime)
                )
                continue
            except Exception as exc:  # a resize of a degenerate image, say: skip, never crash
                batch.skipped.append(
                    SkippedImage(record.uri, f"cannot prepare: {exc}", record.size, record.mtime)
                )
                continue
            arrays.append(pixels)
            batch.records.append(record)
            batch.payloads.append(
                ImagePayload(
                    uri=record.uri,
                    size=record.size,
                    mtime=record.mtime,
                    sha256=image.sha256,
                    width=image.width,
                    height=image.height,
                    format=image.format,
                ).to_dict()
            )
        if arrays:
            batch.pixels = np.stack(arrays)
        return batch


def default_workers() -> int:
    """Decoding processes: one per core beyond the one the model's main thread needs, up to 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 2) - 1))


def split_batches(jobs: Sequence[ImageJob], size: int) -> list[list[ImageJob]]:
    """Split jobs into consecutive lists of at most ``size``."""
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def prepare_batches(
    jobs: Sequence[ImageJob],
    pipeline: PixelPipeline,
    *,
    batch_size: int,
    workers: int | None = None,
    prefetch: int = 2,
) -> Iterator[PreparedBatch]:
    """Prepare ``jobs`` in batches, in order, in worker processes ahead of the consumer.

    Args:
        jobs: Images to prepare.
        pipeline: What to do to each image.
        batch_size: Images per batch.
        workers: Worker processes; 0 prepares in this process; None picks a default.
        prefetch: Batches in flight per worker.

    Yields:
        One :class:`PreparedBatch` per ``batch_size`` jobs, in the order of ``jobs``.
    """
    chunks = split_batches(jobs, batch_size)
    workers = default_workers() if workers is None else workers
    if workers == 0 or len(chunks) <= 1:
        for chunk in chunks:
            yield pipeline.prepare(chunk)
        return
    # spawn, not fork: the parent holds torch's thread pools, which a forked child inherits
    # in an unusable state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[PreparedBatch]] = deque()
        upcoming = iter(chunks)
        for chunk in upcoming:
            pending.append(pool.submit(pipeline.prepare, chunk))
            if len(pending) >= workers * prefetch:
                break
        while pending:
            done = pending.popleft().result()
            for chunk in upcoming:
                pending.append(pool.submit(pipeline.prepare, chunk))
                break
            yield done
