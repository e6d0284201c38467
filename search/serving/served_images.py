"""Which indexed images a server hands out, and how it reads them without being fooled.

A payload's ``uri`` proves nothing (snapshots travel, and a crafted one may name
``/etc/shadow``), so the server serves an image only when:

- it is a **local file** whose real path, as the kernel opened it, lies under one of the
  store's trusted folders (:mod:`indexer.trusted_roots`), it is a **regular file** (never a
  FIFO, a device or a folder), and Pillow identifies an **image format** from its bytes; the
  content type then comes from that format, never from the file's name; or
- it is an **http(s) URL** whose origin is one of the store's trusted origins: originals are a
  redirect to it, thumbnails are fetched under the server's policy (deadline, size cap, no
  private addresses unless allowed).

Everything else is :class:`NotServable`; the API answers 404 without saying why, and logs the
reason. The file that was checked is the file that is served: it stays open from the check to
the last byte sent (no second open by path that a swapped link could redirect).

The trusted roots are read from the store once and kept in memory; :meth:`ServedImages.refresh`
re-reads them (the server calls it after each of its own index runs and loads, which record
roots).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from indexer.access import AccessPolicy, fetch_url, open_regular_file
from indexer.camera_raw import sniff_raw_format
from indexer.config import ApiSettings
from indexer.decode import register_plugins
from indexer.errors import AnyshotError, ImageDecodeError
from indexer.schema import uri_path
from indexer.trusted_roots import origin_of, split_roots
from search.serving.work_limits import WorkLimiter

logger = logging.getLogger(__name__)

MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "DIB": "image/bmp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "HEIF": "image/heif",
    "ICO": "image/x-icon",
    "JPEG2000": "image/jp2",
    # Camera RAW files (freedesktop.org's names): downloaded, not shown; their thumbnails are.
    "DNG": "image/x-adobe-dng",
    "CR2": "image/x-canon-cr2",
    "CR3": "image/x-canon-cr3",
    "NEF": "image/x-nikon-nef",
    "ARW": "image/x-sony-arw",
    "RAF": "image/x-fuji-raf",
    "ORF": "image/x-olympus-orf",
    "RW2": "image/x-panasonic-rw2",
}
"""Content types of the formats browsers show; other formats Pillow knows get Pillow's type
when it is an image type (PostScript, PDF and the like are never served)."""

VIDEO_MEDIA_TYPES = {
    "MP4": "video/mp4",
    "MOV": "video/quicktime",
    "WEBM": "video/webm",
    "MKV": "video/x-matroska",
    "AVI": "video/x-msvideo",
    "MPEG": "video/mpeg",
    "MPEG-TS": "video/mp2t",
    "OGV": "video/ogg",
    "WMV": "video/x-ms-wmv",
}
"""Content types of the video containers served (``/videos/{id}``)."""

READ_CHUNK = 256 * 1024
RAW_HEADER_BYTES = 64 * 1024
"""How much of a file Pillow cannot identify is read to tell a camera RAW file by its header."""


class NotServable(AnyshotError):
    """An indexed image the server will not hand out.

    The message says only that; ``reason`` (for the log) says why.

    Attributes:
        uri: The image's stored URI.
        reason: Why it is refused.
        worth_logging: False when the server said why once already (a store without trusted
            roots would otherwise log every thumbnail of a page).
    """

    def __init__(self, uri: str, reason: str, *, worth_logging: bool = True) -> None:
        super().__init__("the image is not servable")
        self.uri = uri
        self.reason = reason
        self.worth_logging = worth_logging


@dataclass(frozen=True, slots=True)
class TrustedRoots:
    """The roots a server serves from, as read from its store.

    Attributes:
        folders: Real paths of trusted folders.
        origins: Trusted web origins (``https://host[:port]``).
        recorded: Whether the store had a trusted-roots document at all.
    """

    folders: tuple[str, ...] = ()
    origins: frozenset[str] = frozenset()
    recorded: bool = False


@dataclass(frozen=True, slots=True)
class OpenedImage:
    """A local image file opened and checked for serving.

    Attributes:
        file: The open file, positioned at its start.
        size: Its size in bytes when it was checked.
        media_type: The content type of the format Pillow identified.
        format: Pillow's name of that format.
    """

    file: BinaryIO
    size: int
    media_type: str
    format: str

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes in chunks, at most ``size`` of them (a growing file stays capped)."""
        left = self.size
        while left > 0:
            chunk = self.file.read(min(READ_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def media_type_of(image_format: str) -> str | None:
    """The content type to serve an image format with, or None when it is not served."""
    if image_format in MEDIA_TYPES:
        return MEDIA_TYPES[image_format]
    Image.init()
    media = Image.MIME.get(image_format, "")
    return media if media.startswith("image/") and "svg" not in media else None


def identify_format(file: BinaryIO) -> str | None:
    """The image format Pillow reads from a file's header (else a camera RAW format told by its
    first bytes: :func:`indexer.camera_raw.sniff_raw_format`), or None; the file is left at 0.

    Only the header is parsed (no pixels are decoded). Pillow gets a duplicate of the file
    descriptor, so that closing its image does not close ``file``.
    """
    with (
        os.fdopen(os.dup(file.fileno()), "rb") as probe,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        register_plugins()  # HEIC files are identified as the decoder reads them
        try:
            probe.seek(0)
            with Image.open(probe) as image:
                image_format = image.format
        except Exception:  # untrusted bytes: any plugin error means "not an image"
            image_format = None
    if image_format in (None, "TIFF"):  # camera RAW files: TIFF to Pillow (DNG) or unknown
        file.seek(0)
        image_format = sniff_raw_format(file.read(RAW_HEADER_BYTES)) or image_format
    file.seek(0)
    return image_format


class ServedImages:
    """Decides which indexed images a server may hand out, and opens or fetches them.

    Args:
        read_roots: Reads the collection's trusted roots (None: it records none), as
            :meth:`search.client.ImageSearch.trusted_roots` does.
        api: The server's settings (download deadline, allowed private hosts, size cap).
        downloads: The server's limit on concurrent downloads (thumbnails of web images).
    """

    def __init__(
        self,
        read_roots: Callable[[], tuple[str, ...] | None],
        api: ApiSettings,
        downloads: WorkLimiter,
    ) -> None:
        self._read_roots = read_roots
        self._downloads = downloads
        # Web images were indexed by the operator: fetched whatever api.fetch_image_urls says,
        # but still never from private addresses unless api.fetch_allowed_hosts lists them.
        self._web_policy = dataclasses.replace(AccessPolicy.for_server(api), fetch_urls=True)
        self._lock = threading.Lock()
        self._roots = TrustedRoots()

    @property
    def roots(self) -> TrustedRoots:
        """The trusted roots as last read from the store."""
        with self._lock:
            return self._roots

    def refresh(self) -> TrustedRoots:
        """Re-read the collection's trusted roots (after a run or a load recorded new ones)."""
        roots = self._read_roots()
        folders, origins = split_roots(roots or ())
        fresh = TrustedRoots(folders, origins, recorded=roots is not None)
        with self._lock:
            self._roots = fresh
        return fresh

    def warn_if_unrecorded(self, *, indexed: bool) -> None:
        """Log one warning when a collection (``indexed``: it holds images) has no trusted
        roots: it then serves no image."""
        if self.roots.recorded or not indexed:
            return
        logger.warning(
            "this collection records no folders it was indexed from (it was made before "
            "anyshot kept them), so the server serves none of its images; run `anyshot index "
            "SOURCE` again for each source folder to record it (unchanged files cost a stat)"
        )

    def web_url(self, uri: str) -> str | None:
        """The URL to redirect to when ``uri`` is a web image of a trusted origin, else None."""
        origin = origin_of(uri)
        return uri if origin is not None and origin in self.roots.origins else None

    @contextlib.contextmanager
    def open_local(self, uri: str) -> Iterator[OpenedImage]:
        """Open a local indexed image for serving: trusted folder, regular file, image format.

        Raises:
            NotServable: Any of these does not hold (or the file is gone).
        """
        path = uri_path(uri)
        if path is None:
            raise NotServable(uri, "not a local file")
        folders = self.roots.folders
        if not folders:
            unrecorded = not self.roots.recorded  # warned about at startup
            raise NotServable(
                uri, "the collection has no trusted folders", worth_logging=not unrecorded
            )
        try:
            with open_regular_file(path, roots=folders, shown=uri) as (file, info):
                image_format = identify_format(file)
                if image_format is None:
                    raise NotServable(uri, "not an image (Pillow cannot identify it)")
                media_type = media_type_of(image_format)
                if media_type is None:
                    raise NotServable(uri, f"{image_format} images are not served")
                yield OpenedImage(file, info.st_size, media_type, image_format)
        except ImageDecodeError as exc:
            raise NotServable(uri, exc.reason) from exc

    @contextlib.contextmanager
    def open_video(self, uri: str) -> Iterator[OpenedImage]:
        """Open a local indexed video for serving: the rules of :meth:`open_local`, with a
        container that FFmpeg identifies as a video (its content type from that container,
        never from the name).

        Raises:
            NotServable: Any of these does not hold (or the file is gone).
        """
        path = uri_path(uri)
        if path is None:
            raise NotServable(uri, "not a local file")
        folders = self.roots.folders
        if not folders:
            unrecorded = not self.roots.recorded
            raise NotServable(
                uri, "the collection has no trusted folders", worth_logging=not unrecorded
            )
        try:
            with open_regular_file(path, roots=folders, shown=uri) as (file, info):
                container = identify_video(file, path)
                if container is None:
                    raise NotServable(uri, "not a video (FFmpeg finds no video stream)")
                file.seek(0)
                yield OpenedImage(file, info.st_size, VIDEO_MEDIA_TYPES[container], container)
        except ImageDecodeError as exc:
            raise NotServable(uri, exc.reason) from exc

    @contextlib.contextmanager
    def source(self, uri: str) -> Iterator[ImageSource]:
        """Check that an indexed image may be served and give a way to read its bytes.

        A local file is opened (and checked) at once; a web image's origin is checked, and it
        is downloaded only if its bytes are read.

        Raises:
            NotServable: The image may not be served.
        """
        if uri_path(uri) is None:
            url = self.web_url(uri)
            if url is None:
                raise NotServable(uri, "not under a trusted folder or origin")
            yield ImageSource(uri, fetch=lambda: self._fetch(url))
            return
        with self.open_local(uri) as opened:
            yield ImageSource(uri, opened=opened)

    def _fetch(self, url: str) -> bytes:
        with self._downloads.slot():
            try:
                return fetch_url(url, self._web_policy)
            except ImageDecodeError as exc:
                raise NotServable(url, exc.reason) from exc


def identify_video(file: BinaryIO, path: str) -> str | None:
    """The container of an open video file (a key of :data:`VIDEO_MEDIA_TYPES`), or None when
    FFmpeg finds no video stream in it. The name only tells MP4 from MOV and WebM from MKV,
    which FFmpeg's demuxers do not."""
    import av  # FFmpeg; only servers that serve a video pay for the import

    try:
        with av.open(file, metadata_errors="ignore") as container:
            if not container.streams.video:
                return None
            names = set(container.format.name.split(","))
    except Exception:  # any FFmpeg refusal: not a video we serve
        return None
    extension = os.path.splitext(path)[1].lower()
    if "mp4" in names or "mov" in names:
        return "MOV" if extension == ".mov" else "MP4"
    if "webm" in names or "matroska" in names:
        return "WEBM" if extension == ".webm" else "MKV"
    for name, container_name in (
        ("avi", "AVI"),
        ("mpegts", "MPEG-TS"),
        ("mpeg", "MPEG"),
        ("ogg", "OGV"),
        ("asf", "WMV"),
    ):
        if name in names:
            return container_name
    return None


class ImageSource:
    """The bytes of a servable image, read on demand (see :meth:`ServedImages.source`)."""

    def __init__(
        self,
        uri: str,
        *,
        opened: OpenedImage | None = None,
        fetch: Callable[[], bytes] | None = None,
    ) -> None:
        self.uri = uri
        self._opened = opened
        self._fetch = fetch

    def read(self) -> bytes:
        """The whole image file.

        Raises:
            NotServable: It cannot be read or downloaded any more.
        """
        if self._opened is not None:
            try:
                return b"".join(self._opened.chunks())
            except OSError as exc:
                raise NotServable(self.uri, f"cannot read: {exc}") from exc
        if self._fetch is None:
            raise NotServable(self.uri, "nothing to read")
        return self._fetch()
