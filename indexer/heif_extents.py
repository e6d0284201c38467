"""Whether a HEIF/AVIF file holds all the data its items point at.

libheif decodes a grid image (what iPhones write: 512x512 HEVC tiles) whose tiles are cut off
by painting the missing tiles a flat colour, without an error. An image with missing tiles
would then be indexed as a different picture; instead the file's item locations (the ``iloc``
box, ISO/IEC 14496-12 §8.11.3) are checked against its size before decoding: a truncated file
or a tile pointing past the end is refused with a reason.
"""

from __future__ import annotations

import struct

_MAX_BOXES = 10_000


def missing_item_data(data: bytes) -> str | None:
    """Say what is missing from a HEIF/AVIF file, or None when every item's data is there.

    Only the layout is checked (extents stored in the file itself, construction method 0), not
    the compressed data; a file whose boxes cannot be parsed is left to the decoder to judge.
    """
    try:
        meta = _find_box(data, 0, len(data), b"meta")
        if meta is None:
            return None
        start, end = meta
        iloc = _find_box(data, start + 4, end, b"iloc")  # meta is a full box: skip its header
        if iloc is None:
            return None
        return _check_iloc(data, iloc[0], iloc[1], len(data))
    except (struct.error, ValueError):
        return None


def _find_box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """The payload (start, end) of the first box of ``kind`` between start and end."""
    offset = start
    for _ in range(_MAX_BOXES):
        if offset + 8 > end:
            return None
        size, name = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            raise ValueError("box too small")
        if name == kind:
            return offset + header, min(offset + size, end)
        offset += size
    return None


def _check_iloc(data: bytes, start: int, end: int, file_size: int) -> str | None:
    version = data[start]
    at = start + 4
    sizes = data[at]
    offset_size, length_size = sizes >> 4, sizes & 15
    base_offset_size, index_size = data[at + 1] >> 4, data[at + 1] & 15
    at += 2
    if version < 2:
        (count,) = struct.unpack_from(">H", data, at)
        at += 2
    else:
        (count,) = struct.unpack_from(">I", data, at)
        at += 4
    for _ in range(count):
        if version < 2:
            (item,) = struct.unpack_from(">H", data, at)
            at += 2
        else:
            (item,) = struct.unpack_from(">I", data, at)
            at += 4
        method = 0
        if version in (1, 2):
            method = struct.unpack_from(">H", data, at)[0] & 15
            at += 2
        at += 2  # data_reference_index
        base, at = _uint(data, at, base_offset_size)
        (extents,) = struct.unpack_from(">H", data, at)
        at += 2
        for _ in range(extents):
            if version in (1, 2) and index_size:
                at += index_size
            offset, at = _uint(data, at, offset_size)
            length, at = _uint(data, at, length_size)
            if at > end:
                raise ValueError("iloc box overruns itself")
            if method == 0 and length and base + offset + length > file_size:
                return (
                    f"missing data: item {item} needs bytes up to {base + offset + length}, "
                    f"the file has {file_size} (truncated, or a tile is missing)"
                )
    return None


def _uint(data: bytes, at: int, size: int) -> tuple[int, int]:
    if size == 0:
        return 0, at
    if size not in (4, 8):
        raise ValueError(f"field size {size}")
    return int.from_bytes(data[at : at + size], "big"), at + size
