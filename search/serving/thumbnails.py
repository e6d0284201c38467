"""Thumbnails of indexed images, made once and cached on disk.

A thumbnail's file name holds the point id, the edge size and the first characters of the
image's SHA-256, so a changed image gets a new thumbnail and the old one is never served.
Thumbnails are made only of images the server may serve (:mod:`search.served_images`), and
that is checked on every request, cached or not.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

from PIL import Image

from indexer.config import Settings, default_data_dir
from indexer.decode import decode_image
from indexer.errors import ImageDecodeError
from indexer.stores.location import StoreLocation
from indexer.video import read_frame_at
from search.serving.served_images import NotServable, ServedImages
from search.serving.work_limits import WorkLimiter

THUMBNAIL_QUALITY = 85


def thumbnail_dir(settings: Settings) -> Path:
    """Where thumbnails are cached: the setting, ``thumbs/`` in a folder store, else data dir."""
    if settings.api.thumbnail_dir is not None:
        return settings.api.thumbnail_dir
    location = StoreLocation.parse(settings.store.location)
    if location.folder is not None:
        return location.folder / "thumbs"
    key = f"{location}#{settings.store.collection}"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")[:60]
    return default_data_dir() / "thumbs" / f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def encode_jpeg(image: Image.Image, size: int) -> bytes:
    """Shrink an image to fit ``size`` × ``size`` (aspect kept) and encode it as JPEG."""
    small = image.copy()
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


class ThumbnailCache:
    """JPEG thumbnails of servable indexed images, cached in a folder.

    Args:
        folder: The cache folder; created on the first thumbnail.
        images: What the server may serve, and how to read it.
        decodes: The limit on thumbnails decoded at once.
    """

    def __init__(self, folder: Path, images: ServedImages, *, decodes: WorkLimiter) -> None:
        self.folder = folder
        self.images = images
        self.decodes = decodes

    def path(self, point_id: int, size: int, sha256: str) -> Path:
        """Where the thumbnail of one image at one size is cached."""
        digest = re.sub(r"[^0-9a-f]", "", sha256.lower())[:16] or "nohash"
        return self.folder / f"{point_id % 256:02x}" / f"{point_id}-{size}-{digest}.jpg"

    def thumbnail(
        self, point_id: int, uri: str, sha256: str, size: int, *, t: float | None = None
    ) -> bytes:
        """Return the JPEG thumbnail of an image, making and caching it on the first call.

        Args:
            point_id: The image's (or the video frame's) id.
            uri: The image or video file.
            sha256: The stored content hash (part of the cache key).
            size: The longest edge.
            t: For a frame of a video: its time in seconds; the frame is decoded there.

        Raises:
            NotServable: The image may not be served, or cannot be read or decoded any more.
            BusyError: Too many thumbnails are being made at once, for too long.
        """
        cached = self.path(point_id, size, sha256)
        if t is not None:
            return self._frame_thumbnail(cached, uri, t, size)
        # Checked first, cached or not: a store's payloads may have changed since (a load).
        with self.images.source(uri) as source:
            try:
                return cached.read_bytes()
            except OSError:
                pass
            data = source.read()
        with self.decodes.slot():
            try:
                image = decode_image(data, uri=uri, target_size=size).image
            except ImageDecodeError as exc:
                raise NotServable(uri, exc.reason) from exc
            jpeg = encode_jpeg(image, size)
        self._store(cached, jpeg)
        return jpeg

    def _frame_thumbnail(self, cached: Path, uri: str, t: float, size: int) -> bytes:
        with self.images.open_video(uri) as opened:
            try:
                return cached.read_bytes()
            except OSError:
                pass
            with self.decodes.slot():
                try:
                    image = read_frame_at(opened.file, t, short_side=size, shown=uri)
                except ImageDecodeError as exc:
                    raise NotServable(uri, exc.reason) from exc
                jpeg = encode_jpeg(image, size)
        self._store(cached, jpeg)
        return jpeg

    @staticmethod
    def _store(path: Path, data: bytes) -> None:
        # Written under a temporary name and renamed, so that a reader never sees half a file.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except OSError:
                os.unlink(tmp)
                raise
        except OSError:
            return  # a read-only cache folder costs speed, not correctness
