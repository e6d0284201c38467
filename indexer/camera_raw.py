"""Camera RAW files (CR2, CR3, NEF, ARW, DNG, RAF, ORF, RW2) through LibRaw (``rawpy``).

Cameras embed a JPEG preview in their RAW files, usually of full or near-full size: reading it
is as fast as reading a JPEG, and it is what the camera itself shows. It is taken when its short
side is at least what the model needs; otherwise (no preview, or a thumbnail too small) the
sensor data is developed by LibRaw at half size (its fast demosaic: one RGB pixel per 2x2 Bayer
block), with the camera's white balance.

Metadata: the TIFF-structured RAW files (DNG, CR2, NEF, ARW, and ORF and RW2, whose headers
differ from TIFF's only in the magic number) carry EXIF in their first IFD, read here without
touching the pixels. CR3 (ISO media) and RAF (Fujifilm) are read through their preview JPEG's
EXIF when it has one; otherwise they have no metadata.

This module decodes nothing with Pillow but the preview's header; :mod:`indexer.decode` turns
what it returns into RGB.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from indexer.errors import ImageDecodeError
from indexer.photo_metadata import read_exif_metadata, read_photo_metadata

logger = logging.getLogger(__name__)

DEFAULT_MIN_PREVIEW_SIDE = 512
"""With no target size, a preview is taken when its short side is at least this."""

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*")
_DNG_VERSION_TAG = 50706
_TIFF_LIKE_MAGICS = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")  # ORF, ORF, ORF, RW2


class NotRaw(Exception):
    """LibRaw does not know these bytes: the caller tries them as an ordinary image."""


@dataclass(slots=True)
class RawPicture:
    """What a RAW file gives to be turned into RGB.

    Attributes:
        preview_jpeg: The embedded preview, when it is used and is a JPEG.
        pixels: RGB uint8 (H, W, 3): the developed picture, or a bitmap preview.
        flip: LibRaw's orientation of the preview (0 none, 3 180°, 5 90° counter-clockwise,
            6 90° clockwise); developed pixels are already turned.
        width: Full developed width, after orientation.
        height: Full developed height, after orientation.
        developed: True when the sensor data was developed (no usable preview).
    """

    preview_jpeg: bytes | None
    pixels: np.ndarray | None
    flip: int
    width: int
    height: int
    developed: bool


def sniff_raw_format(data: bytes) -> str | None:
    """The RAW format of a file by its first bytes: RAF, CR3, ORF, RW2 and CR2 by their magic,
    DNG by the DNGVersion tag of its first IFD. NEF and ARW are plain TIFF headers: only their
    names tell them (an unnamed one decodes as the TIFF thumbnail in its first IFD)."""
    head = data[:16]
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if data[4:12] == b"ftypcrx ":
        return "CR3"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "ORF"
    if head[:4] == b"IIU\x00":
        return "RW2"
    if head[:4] == b"II*\x00" and head[8:10] == b"CR":
        return "CR2"
    if head[:4] in _TIFF_MAGICS and _first_ifd_has(data, _DNG_VERSION_TAG):
        return "DNG"
    return None


def looks_raw(data: bytes) -> bool:
    """True when the first bytes are a RAW format's or TIFF's (which NEF, ARW and DNG share)."""
    return data[:4] in _TIFF_MAGICS or sniff_raw_format(data) is not None


def _first_ifd_has(data: bytes, tag: int) -> bool:
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        return any(
            struct.unpack_from(order + "H", data, offset + 2 + 12 * i)[0] == tag
            for i in range(min(count, 1000))
        )
    except struct.error:  # offsets past the end: not a DNG we can read
        return False


def read_raw(
    data: bytes,
    *,
    uri: str,
    raw_format: str,
    target_size: int | None,
    max_pixels: int,
) -> RawPicture:
    """Read a RAW file's preview, or develop it at half size when the preview is missing,
    smaller than ``target_size`` (:data:`DEFAULT_MIN_PREVIEW_SIDE` when None) on its short side
    or larger than ``max_pixels``.

    Raises:
        NotRaw: LibRaw does not recognise the bytes as a RAW file.
        ImageDecodeError: A RAW file LibRaw cannot read, or one to develop whose sensor has
            more than ``max_pixels``.
    """
    import rawpy  # only where a RAW file is decoded: the import costs ~50 ms

    min_side = target_size or DEFAULT_MIN_PREVIEW_SIDE
    raw = rawpy.RawPy()
    try:
        try:
            raw.open_buffer(io.BytesIO(data))
        except rawpy.LibRawFileUnsupportedError as exc:
            raise NotRaw(_libraw_message(exc)) from exc
        sizes = raw.sizes
        width, height = sizes.width, sizes.height
        if sizes.flip in (5, 6):
            width, height = height, width
        # The pixel limit applies to what is decoded: the preview, or else the sensor data.
        preview = _preview(raw, rawpy, uri, min_side, max_pixels)
        if preview is not None:
            jpeg, bitmap = preview
            return RawPicture(jpeg, bitmap, sizes.flip, width, height, developed=False)
        if max(sizes.raw_width * sizes.raw_height, width * height) > max_pixels:
            raise ImageDecodeError(uri, f"too large: {width}x{height} pixels (limit {max_pixels})")
        raw.unpack()
        pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        return RawPicture(None, pixels, 0, width, height, developed=True)
    except (NotRaw, ImageDecodeError):
        raise
    except rawpy.LibRawError as exc:
        raise ImageDecodeError(
            uri, f"truncated or corrupt {raw_format} file: {_libraw_message(exc)}"
        ) from exc
    except Exception as exc:  # untrusted input: anything LibRaw or numpy raise is a bad file
        raise ImageDecodeError(uri, f"truncated or corrupt {raw_format} file: {exc}") from exc
    finally:
        raw.close()


def read_raw_metadata(data: bytes, *, uri: str, preview_jpeg: bytes | None = None) -> dict:
    """The metadata payload keys of a RAW file (see the module's docstring for which formats
    have them). ``preview_jpeg``: the preview, when the caller has it already."""
    found: dict[str, Any] = {}
    header = data[:4]
    if header in _TIFF_MAGICS or header in _TIFF_LIKE_MAGICS:
        tiff = data if header in _TIFF_MAGICS else header[:2] + b"*\x00" + data[4:]
        if header == b"MMOR":
            tiff = b"MM\x00*" + data[4:]
        exif = Image.Exif()
        try:
            with warnings.catch_warnings():  # Pillow warns of a corrupt block: dropped here
                warnings.simplefilter("ignore")
                exif.load(tiff)
            found = read_exif_metadata(exif, uri=uri)
        except Exception as exc:  # untrusted input: a broken header costs only the metadata
            logger.debug("%s: no RAW header metadata: %s", uri, exc)
    if len(found) > 1:  # more than meta_version
        return found
    if preview_jpeg is None:
        preview_jpeg = _preview_bytes(data)
    if preview_jpeg:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with Image.open(io.BytesIO(preview_jpeg)) as image:
                    return read_photo_metadata(image, uri=uri)
            except Exception as exc:
                logger.debug("%s: no preview metadata: %s", uri, exc)
    return found or read_exif_metadata(Image.Exif(), uri=uri)


def _preview(
    raw: Any, rawpy: Any, uri: str, min_side: int, max_pixels: int
) -> tuple[bytes | None, np.ndarray | None] | None:
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError as exc:  # a broken preview: the sensor data may still be fine
        logger.debug("%s: unreadable RAW preview: %s", uri, _libraw_message(exc))
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(thumb.data)) as header:
                width, height = header.size
        except Exception as exc:
            logger.debug("%s: RAW preview is not a readable JPEG: %s", uri, exc)
            return None
        if min(width, height) >= min_side and width * height <= max_pixels:
            return bytes(thumb.data), None
        return None
    bitmap = np.asarray(thumb.data)
    if bitmap.ndim != 3 or bitmap.shape[2] != 3:
        return None
    if bitmap.shape[0] * bitmap.shape[1] <= max_pixels and min(bitmap.shape[:2]) >= min_side:
        return None, bitmap.astype(np.uint8, copy=False)
    return None


def _preview_bytes(data: bytes) -> bytes | None:
    import rawpy

    raw = rawpy.RawPy()
    try:
        raw.open_buffer(io.BytesIO(data))
        thumb = raw.extract_thumb()
        return bytes(thumb.data) if thumb.format == rawpy.ThumbFormat.JPEG else None
    except Exception:  # no preview, or not a RAW file: no metadata from here
        return None
    finally:
        raw.close()


def _libraw_message(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
