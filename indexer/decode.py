"""Read one image's bytes (path, ``file://`` URI or http(s) URL) and decode them to RGB.

Reading goes through :mod:`indexer.access`, under an :class:`~indexer.access.AccessPolicy`.

Decoding is where untrusted files meet C code, so every failure becomes an
:class:`~indexer.errors.ImageDecodeError` with a short reason; callers log it, count it and go on
with the batch. Nothing here touches Pillow's global settings; the one change to Pillow's
global state is the HEIF plugin's registration (:func:`register_plugins`, once per process).

Formats: what Pillow decodes, HEIC/HEIF through ``pillow-heif``, camera RAW files through LibRaw
(:mod:`indexer.camera_raw`); the extensions are listed in :mod:`indexer.formats`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import re
import urllib.parse
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from indexer.access import AccessPolicy, fetch_url, read_local_file
from indexer.camera_raw import (
    NotRaw,
    looks_raw,
    read_raw,
    read_raw_metadata,
    sniff_raw_format,
)
from indexer.errors import ImageDecodeError
from indexer.formats import heif_available, raw_available, raw_format_of_name
from indexer.heif_extents import missing_item_data
from indexer.photo_metadata import read_photo_metadata
from indexer.schema import uri_path

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 100_000_000
"""Images with more pixels are refused before their pixels are decoded."""

_WHITE = (255, 255, 255)
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image 90°
_PILLOW_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


_FORMAT_ALIASES = {"MPO": "JPEG"}
_ISO_MEDIA_FORMATS = frozenset({"HEIF", "AVIF"})
_RAW_FLIPS = {
    3: Image.Transpose.ROTATE_180,
    5: Image.Transpose.ROTATE_90,  # counter-clockwise
    6: Image.Transpose.ROTATE_270,
}


@functools.cache
def register_plugins() -> None:
    """Register the Pillow plugins of :mod:`indexer.formats` (HEIC/HEIF) in this process.

    Called by every decoding function here, so that worker processes (spawned, importing only
    what they use) decode what discovery found; a plugin that is not installed is skipped.
    """
    if heif_available():
        import pillow_heif

        pillow_heif.register_heif_opener()


@dataclass(slots=True)
class DecodedImage:
    """An image decoded to RGB, with what the payload needs to know about its file.

    Attributes:
        image: The pixels, mode ``RGB``. For JPEGs decoded with a ``target_size`` this is a
            reduced version (still at least ``target_size`` on both sides), not the full image.
        width: Full-resolution width after EXIF orientation is applied.
        height: Full-resolution height after EXIF orientation is applied.
        format: Pillow's format name, e.g. ``"JPEG"``, ``"PNG"``, ``"HEIF"``, ``"AVIF"``; for
            camera RAW files the RAW format (``"DNG"``, ``"CR2"``, ...; see
            :data:`indexer.formats.RAW_EXTENSIONS`).
        sha256: Hex SHA-256 of the file's bytes.
        metadata: Payload keys from the file's EXIF, XMP and IPTC (date taken, GPS, camera,
            keywords; :func:`indexer.photo_metadata.read_photo_metadata`), when asked for.
    """

    image: Image.Image
    width: int
    height: int
    format: str
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)


def read_image_bytes(uri: str, *, access: AccessPolicy | None = None) -> bytes:
    """Read the bytes of one image from a local path, a ``file://`` URI or an http(s) URL.

    Local files go through :func:`~indexer.access.read_local_file` (regular files only, never
    blocking on a FIFO, under ``access.roots`` after resolving links, checked on the opened
    file); URLs through :func:`~indexer.access.fetch_url` (the policy's hosts, deadline and
    size cap). A ``file://`` URL of another host is refused, never read as a local path.

    Args:
        uri: Local path, ``file://`` URI or ``http://``/``https://`` URL.
        access: What may be read; None reads anything, with a 60 s deadline per download.

    Returns:
        The file's bytes, never empty.

    Raises:
        ImageDecodeError: The file is missing, unreadable, not a regular file, outside the
            roots, empty or too large, or the download was refused or failed; ``reason``
            says which.
    """
    policy = access if access is not None else AccessPolicy()
    path = uri_path(uri)
    if path is not None:
        return read_local_file(path, roots=policy.roots, max_bytes=policy.max_bytes, shown=uri)
    scheme = uri.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        return fetch_url(uri, policy)
    if scheme == "file":
        host = urllib.parse.urlsplit(uri).netloc
        raise ImageDecodeError(uri, f"not a local file URL (host {host!r})")
    raise ImageDecodeError(uri, f"unsupported URL scheme {scheme!r}")


def decode_image(
    data: bytes,
    *,
    uri: str = "<bytes>",
    target_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    with_metadata: bool = False,
) -> DecodedImage:
    """Decode an image file's bytes to an RGB image.

    The first frame of animations is taken, EXIF orientation is applied, transparency is
    composited over white and every Pillow mode is converted to 8-bit RGB. HEIC/HEIF files go
    through ``pillow-heif``; camera RAW files (by their name's extension or their first bytes;
    a DNG also by its tags) through LibRaw: the embedded preview when its short side is at least
    ``target_size``, else the sensor data developed at half size (:mod:`indexer.camera_raw`).
    A file named like a RAW file that LibRaw does not know is tried as any other image.

    Args:
        data: The whole file.
        uri: Where the bytes came from; used in errors only.
        target_size: The side the caller will resize to. JPEGs are then reduced by the decoder
            itself (DCT scaling, up to 8x) to no less than this on both sides, which is much
            faster; ``width`` and ``height`` still report the full size.
        max_pixels: Images whose header declares more pixels are refused before decoding.
        with_metadata: Also read the photo's metadata (``DecodedImage.metadata``); a field
            that cannot be read is left out, never an error.

    Returns:
        The decoded image and its full size, format and SHA-256.

    Raises:
        ImageDecodeError: Empty, not an image, too large, truncated or corrupt.
    """
    if not data:
        raise ImageDecodeError(uri, "empty file")
    register_plugins()
    raw_format = _raw_format(data, uri)
    if raw_format is not None:
        try:
            return _decode_raw(data, uri, raw_format, target_size, max_pixels, with_metadata)
        except NotRaw as exc:  # named like a RAW file, is not one: Pillow may know it
            logger.debug("%s: not a %s file (%s); trying other formats", uri, raw_format, exc)
    return _decode_with_pillow(data, uri, target_size, max_pixels, with_metadata)


def _decode_with_pillow(
    data: bytes,
    uri: str,
    target_size: int | None,
    max_pixels: int,
    with_metadata: bool,
) -> DecodedImage:
    # Only the bomb warning is silenced: max_pixels, not Pillow's global limit, decides. Note
    # that catch_warnings swaps process-wide state, so decode in processes rather than threads.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise ImageDecodeError(uri, "not an image (cannot identify format)") from exc
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError(uri, _pillow_bomb_reason(exc, max_pixels)) from exc
        except Exception as exc:  # untrusted input: any plugin error means a bad file
            raise ImageDecodeError(uri, f"truncated or corrupt image: {exc}") from exc

        width, height = image.size
        if width * height > max_pixels:
            raise ImageDecodeError(uri, f"too large: {width}x{height} pixels (limit {max_pixels})")
        # Camera JPEGs with embedded previews open as "MPO": they are JPEG files to users.
        image_format = _FORMAT_ALIASES.get(image.format or "", image.format or "unknown")
        if image_format in _ISO_MEDIA_FORMATS:
            missing = missing_item_data(data)  # libheif paints missing tiles, silently
            if missing is not None:
                raise ImageDecodeError(uri, missing)
        metadata = read_photo_metadata(image, uri=uri) if with_metadata else {}
        try:
            if target_size:
                image.draft("RGB", (target_size, target_size))  # a no-op except for JPEG
            image.load()
            orientation = _orientation(image, uri)
            if orientation != 1:
                ImageOps.exif_transpose(image, in_place=True)
            rgb = _to_rgb(image)
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError(uri, _pillow_bomb_reason(exc, max_pixels)) from exc
        except Exception as exc:  # untrusted input: any decoder error means a bad file
            raise ImageDecodeError(uri, f"truncated or corrupt image: {exc}") from exc

    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return DecodedImage(
        image=rgb,
        width=width,
        height=height,
        format=image_format,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=metadata,
    )


def read_metadata(data: bytes, *, uri: str = "<bytes>") -> dict[str, Any]:
    """The photo metadata payload keys of an image file, without decoding its pixels.

    Returns:
        What :func:`~indexer.photo_metadata.read_photo_metadata` finds (for camera RAW files,
        :func:`~indexer.camera_raw.read_raw_metadata`); ``{}`` when the file does not open as
        an image at all.
    """
    register_plugins()
    if _raw_format(data, uri) is not None:
        return read_raw_metadata(data, uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                return read_photo_metadata(image, uri=uri)
        except Exception as exc:  # untrusted input: not an image, a bomb, a broken header
            logger.debug("%s: no metadata: %s", uri, exc)
            return {}


def load_image(
    uri: str,
    *,
    target_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    access: AccessPolicy | None = None,
) -> DecodedImage:
    """Read and decode one image: :func:`read_image_bytes` then :func:`decode_image`.

    Args:
        uri: Local path, ``file://`` URI or http(s) URL.
        target_size: See :func:`decode_image`.
        max_pixels: See :func:`decode_image`.
        access: What may be read; see :func:`read_image_bytes`.

    Returns:
        The decoded image.

    Raises:
        ImageDecodeError: The image cannot be read or decoded.
    """
    data = read_image_bytes(uri, access=access)
    return decode_image(data, uri=uri, target_size=target_size, max_pixels=max_pixels)


def _raw_format(data: bytes, uri: str) -> str | None:
    if not raw_available():
        return None
    claimed = raw_format_of_name(uri.split("?", 1)[0])
    if claimed is not None and looks_raw(data):
        return claimed
    return sniff_raw_format(data)  # a RAW file's name that is not one: Pillow says what it is


def _decode_raw(
    data: bytes,
    uri: str,
    raw_format: str,
    target_size: int | None,
    max_pixels: int,
    with_metadata: bool,
) -> DecodedImage:
    """A camera RAW file: its preview JPEG when large enough, else developed at half size."""
    picture = read_raw(
        data, uri=uri, raw_format=raw_format, target_size=target_size, max_pixels=max_pixels
    )
    turn = _RAW_FLIPS.get(picture.flip)
    if picture.preview_jpeg is not None:
        preview = _decode_with_pillow(picture.preview_jpeg, uri, target_size, max_pixels, False)
        rgb = preview.image
        if turn is not None and not _jpeg_has_orientation(picture.preview_jpeg, uri):
            rgb = rgb.transpose(turn)
    else:
        assert picture.pixels is not None
        rgb = Image.fromarray(picture.pixels, "RGB")
        if turn is not None and not picture.developed:  # LibRaw turns what it develops
            rgb = rgb.transpose(turn)
    metadata = (
        read_raw_metadata(data, uri=uri, preview_jpeg=picture.preview_jpeg) if with_metadata else {}
    )
    return DecodedImage(
        image=rgb,
        width=picture.width,
        height=picture.height,
        format=raw_format,
        sha256=hashlib.sha256(data).hexdigest(),
        metadata=metadata,
    )


def _jpeg_has_orientation(jpeg: bytes, uri: str) -> bool:
    try:
        with Image.open(io.BytesIO(jpeg)) as header:
            return _orientation(header, uri) != 1
    except Exception:  # it decoded a moment ago; a header that fails now has no orientation
        return False


def _pillow_bomb_reason(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    # Pillow refuses images over twice its global limit before we can see their size.
    match = _PILLOW_BOMB_PIXELS.search(str(exc))
    if match is None:
        return f"too large: {exc}"
    pixels = int(match.group(1))
    pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    limit = max_pixels if pixels > max_pixels else pillow_limit
    return f"too large: {pixels} pixels (limit {limit})"


def _orientation(image: Image.Image, uri: str) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as exc:  # a broken EXIF block should not cost us the pixels
        logger.debug("%s: ignoring unreadable EXIF: %s", uri, exc)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(_to_8bit(np.asarray(image), mode)).convert("RGB")
    if image.has_transparency_data:
        if mode not in ("RGBA", "LA"):
            image = image.convert("RGBA")
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(image, mask=image)  # the mask is the alpha band
        return background
    return image.convert("RGB")


def _to_8bit(array: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit, 32-bit integer and float greyscale to 8 bits instead of clipping at 255.

    ``I;16*`` is 16-bit. ``I`` (often 16-bit data widened) and ``F`` are read by their range:
    0..1 as unit floats (``F``), 0..255 as 8-bit, 0..65535 as 16-bit (``I``), else stretched.
    """
    if mode.startswith("I;16"):
        return (array >> 8).astype(np.uint8)
    if mode == "F":
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = array.min(), array.max()
    if mode == "F" and low >= 0 and high <= 1:
        return np.rint(array * 255).astype(np.uint8)
    if low >= 0 and high <= 255:
        return np.rint(array).astype(np.uint8)
    if mode == "I" and low >= 0 and high <= 65535:
        return (array >> 8).astype(np.uint8)
    if high == low:
        return np.zeros(array.shape, np.uint8)
    scaled = (array.astype(np.float64) - low) * (255.0 / (float(high) - float(low)))
    return np.rint(scaled).astype(np.uint8)
