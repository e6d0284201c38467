"""Photo files of the formats phones and cameras write, made here (nothing is downloaded).

HEIC with pillow-heif's writer (x265), AVIF with Pillow's (libavif), and a minimal DNG (Adobe's
open RAW format) written byte by byte. A DNG is a TIFF: IFD0 holds the preview (a JPEG, as
cameras and converters embed it, or none), a SubIFD holds the sensor's Bayer mosaic (16-bit,
RGGB), and the DNG tags say how to develop it. LibRaw reads these files as a camera's.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL = 1, 2, 3, 4, 5, 10
_SIZES = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _SRATIONAL: 8}


@dataclass
class _Ifd:
    entries: dict[int, tuple[int, list]] = field(default_factory=dict)
    data: bytes = b""  # the strip this IFD's StripOffsets points at

    def add(self, tag: int, kind: int, values: list | str) -> None:
        if kind == _ASCII:
            values = list(values.encode() + b"\0")  # type: ignore[union-attr]
        self.entries[tag] = (kind, list(values))


def _pack(kind: int, values: list) -> bytes:
    if kind in (_BYTE, _ASCII):
        return bytes(values)
    if kind == _SHORT:
        return struct.pack(f"<{len(values)}H", *values)
    if kind == _LONG:
        return struct.pack(f"<{len(values)}I", *values)
    flat = [part for value in values for part in value]
    return struct.pack(f"<{len(flat)}{'I' if kind == _RATIONAL else 'i'}", *flat)


def _write_tiff(ifds: list[_Ifd], links: dict[tuple[int, int], int]) -> bytes:
    """Lay out IFDs (the first is IFD0); ``links[(i, tag)] = j`` points tag of IFD i at IFD j."""
    # Two passes: the first places every IFD and blob, the second writes them.
    out = bytearray(b"II*\0\0\0\0\0")
    places: list[int] = []
    for ifd in ifds:  # placeholders, sized: entries + overflow values + strip
        if ifd.data:
            ifd.add(273, _LONG, [0])  # StripOffsets, known once the IFD is placed
        for source, tag in links:
            if source == ifds.index(ifd):
                ifd.add(tag, _LONG, [0])  # an IFD pointer, known once that IFD is placed
        places.append(len(out))
        out += bytes(2 + 12 * len(ifd.entries) + 4)
        for kind, values in ifd.entries.values():
            size = _SIZES[kind] * len(values)
            if size > 4:
                out += bytes(size + (size & 1))
        out += ifd.data + bytes(len(ifd.data) & 1)
    out = bytearray(out[:8])
    struct.pack_into("<I", out, 4, places[0])
    for index, ifd in enumerate(ifds):
        for (source, tag), target in links.items():
            if source == index:
                ifd.entries[tag] = (_LONG, [places[target]])
        start = len(out)
        tags = sorted(ifd.entries)
        overflow_at = start + 2 + 12 * len(tags) + 4
        overflow = bytearray()
        strip_at = overflow_at + sum(
            (lambda s: s + (s & 1))(_SIZES[k] * len(v))
            for k, v in ifd.entries.values()
            if _SIZES[k] * len(v) > 4
        )
        if ifd.data:
            ifd.entries[273] = (_LONG, [strip_at])
        head = bytearray(struct.pack("<H", len(tags)))
        for tag in tags:
            kind, values = ifd.entries[tag]
            packed = _pack(kind, values)
            if len(packed) <= 4:
                field_bytes = packed.ljust(4, b"\0")
            else:
                field_bytes = struct.pack("<I", overflow_at + len(overflow))
                overflow += packed + bytes(len(packed) & 1)
            head += struct.pack("<HHI", tag, kind, len(values)) + field_bytes
        head += struct.pack("<I", 0)
        out += head + overflow + ifd.data + bytes(len(ifd.data) & 1)
        assert start == places[index] and (
            not ifd.data or strip_at == len(out) - len(ifd.data) - (len(ifd.data) & 1)
        )
    return bytes(out)


def scene(width: int, height: int, seed: int = 0, texture: float = 0.0) -> np.ndarray:
    """A smooth colourful RGB picture (uint8), different per seed; ``texture`` adds noise of
    that standard deviation, so that it compresses like a photo (benchmarks)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    channels = [
        127 + 120 * np.sin(x / width * 6.28 * (1 + i) + y / height * 3.14 + phase[i])
        for i in range(3)
    ]
    picture = np.stack(channels, axis=-1)
    if texture:
        picture += rng.normal(0, texture, picture.shape).astype(np.float32)
    return np.clip(picture, 0, 255).astype(np.uint8)


def make_dng(
    width: int = 640,
    height: int = 480,
    *,
    preview: tuple[int, int] | None = (320, 240),
    seed: int = 0,
    make: str = "Anyshot",
    model: str = "Test DNG",
    orientation: int = 1,
    texture: float = 0.0,
    taken: str | None = None,
    gps: tuple[float, float] | None = None,
) -> bytes:
    """A DNG of a ``width`` x ``height`` Bayer mosaic, with a JPEG preview of ``preview`` size
    (None: no preview, so a reader must develop the mosaic).

    ``taken`` (``YYYY:MM:DD HH:MM:SS``) and ``gps`` (lat, lon) go into EXIF and GPS IFDs.
    """
    picture = scene(width - width % 2, height - height % 2, seed, texture)
    rgb = picture.astype(np.uint16) * 16  # 12-bit sensor values
    mosaic = np.empty(rgb.shape[:2], np.uint16)
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]  # R
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]  # G
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]  # G
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]  # B
    h, w = mosaic.shape

    raw = _Ifd(data=mosaic.astype("<u2").tobytes())
    raw.add(254, _LONG, [0])
    raw.add(256, _LONG, [w])
    raw.add(257, _LONG, [h])
    raw.add(258, _SHORT, [16])
    raw.add(259, _SHORT, [1])
    raw.add(262, _SHORT, [32803])  # CFA
    raw.add(277, _SHORT, [1])
    raw.add(278, _LONG, [h])
    raw.add(279, _LONG, [len(raw.data)])
    raw.add(284, _SHORT, [1])
    raw.add(33421, _SHORT, [2, 2])  # CFARepeatPatternDim
    raw.add(33422, _BYTE, [0, 1, 1, 2])  # CFAPattern RGGB
    raw.add(50714, _LONG, [0])  # BlackLevel
    raw.add(50717, _LONG, [4095])  # WhiteLevel

    main = _Ifd()
    if preview is not None:
        buffer = io.BytesIO()
        Image.fromarray(picture).resize(preview).save(buffer, "JPEG", quality=90)
        main.data = buffer.getvalue()
        main.add(254, _LONG, [1])  # a reduced-resolution image
        main.add(256, _LONG, [preview[0]])
        main.add(257, _LONG, [preview[1]])
        main.add(258, _SHORT, [8, 8, 8])
        main.add(259, _SHORT, [7])  # JPEG
        main.add(262, _SHORT, [6])  # YCbCr
        main.add(277, _SHORT, [3])
        main.add(278, _LONG, [preview[1]])
        main.add(279, _LONG, [len(main.data)])
    else:
        main.add(254, _LONG, [1])
        main.add(256, _LONG, [1])
        main.add(257, _LONG, [1])
    main.add(271, _ASCII, make)
    main.add(272, _ASCII, model)
    main.add(274, _SHORT, [orientation])
    main.add(50706, _BYTE, [1, 4, 0, 0])  # DNGVersion
    main.add(50707, _BYTE, [1, 1, 0, 0])
    main.add(50708, _ASCII, f"{make} {model}")
    identity = [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]
    main.add(50721, _SRATIONAL, identity)  # ColorMatrix1
    main.add(50778, _SHORT, [21])  # D65
    main.add(50728, _RATIONAL, [(1, 1), (1, 1), (1, 1)])  # AsShotNeutral

    ifds = [main, raw]
    links = {(0, 330): 1}  # SubIFDs
    if taken is not None:
        exif = _Ifd()
        exif.add(36867, _ASCII, taken)  # DateTimeOriginal
        ifds.append(exif)
        links[(0, 34665)] = len(ifds) - 1
    if gps is not None:
        block = _Ifd()
        lat, lon = gps
        block.add(0, _BYTE, [2, 3, 0, 0])
        block.add(1, _ASCII, "N" if lat >= 0 else "S")
        block.add(2, _RATIONAL, _dms(lat))
        block.add(3, _ASCII, "E" if lon >= 0 else "W")
        block.add(4, _RATIONAL, _dms(lon))
        ifds.append(block)
        links[(0, 34853)] = len(ifds) - 1
    return _write_tiff(ifds, links)


def _dms(value: float) -> list[tuple[int, int]]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return [(degrees, 1), (minutes, 1), (round(seconds * 100), 100)]


def photo_exif(
    *,
    make: str | None = None,
    model: str | None = None,
    taken: str | None = None,
    gps: tuple[float, float] | None = None,
) -> bytes:
    """An EXIF block (as HEIC and AVIF writers take it) with camera, date taken and GPS."""
    from photo_files import exif_block

    return exif_block(make=make, model=model, taken=taken, gps=gps).tobytes()


def make_heic(
    width: int = 640,
    height: int = 480,
    *,
    seed: int = 0,
    tile: int = 0,
    exif: bytes = b"",
    thumbnail: int = 0,
    texture: float = 0.0,
) -> bytes:
    """A HEIC of :func:`scene`; ``tile`` > 0 writes a grid of tiles that size and ``thumbnail``
    > 0 a thumbnail whose long side is that (iPhones write 512-pixel tiles, a 320 thumbnail)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    previous = pillow_heif.options.GRID_TILE_SIZE
    pillow_heif.options.GRID_TILE_SIZE = tile
    try:
        buffer = io.BytesIO()
        extra: dict = {"exif": exif} if exif else {}
        if thumbnail:
            extra["thumbnails"] = [thumbnail]
        picture = Image.fromarray(scene(width, height, seed, texture))
        picture.save(buffer, "HEIF", quality=80, **extra)
        return buffer.getvalue()
    finally:
        pillow_heif.options.GRID_TILE_SIZE = previous


def make_avif(
    width: int = 640, height: int = 480, *, seed: int = 0, exif: bytes = b"", texture: float = 0.0
) -> bytes:
    """An AVIF of :func:`scene`, written by Pillow's own AVIF plugin."""
    buffer = io.BytesIO()
    extra = {"exif": exif} if exif else {}
    picture = Image.fromarray(scene(width, height, seed, texture))
    picture.save(buffer, "AVIF", quality=70, speed=8, **extra)
    return buffer.getvalue()


def make_jpeg(width: int = 640, height: int = 480, *, seed: int = 0, texture: float = 0.0) -> bytes:
    """A JPEG of :func:`scene` (the baseline the other formats are compared with)."""
    buffer = io.BytesIO()
    Image.fromarray(scene(width, height, seed, texture)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
