"""Filter expressions (``folder=/data/x``, ``size<2MB``, ...) parsed into a :class:`PayloadFilter`.

One expression per string, ``KEY OP VALUE``; all expressions must hold:

====================  =====================================================================
expression            meaning
====================  =====================================================================
``folder=PATH``       images under this folder (or URL prefix); relative paths are made
                      absolute, as the indexer stores them
``prefix=TEXT``       images whose URI starts with TEXT, exactly as given
``format=JPEG,PNG``   one of these formats (case-insensitive; ``JPG`` means ``JPEG``, ``HEIC``
                      ``HEIF``; RAW files by their own: ``DNG``, ``CR3``, ``NEF``, ...)
``tag=cat,dog``       carrying at least one of these tags (repeat ``tag=``: also any of them)
``id=1,2``            only these indexed images
``mtime>=DATE``       modified at or after DATE (``2024-01-01``, ``2024-01-01T12:00``, ISO
                      with an offset, or seconds since the epoch); ``>``, ``<``, ``<=`` too;
                      dates without an offset are local time
``size<2MB``          file size; units ``B``, ``KB``/``MB``/``GB`` (powers of 1000) and
                      ``KiB``/``MiB``/``GiB`` (powers of 1024); ``>=``, ``>``, ``<=``, ``=``
``taken>=2023-06-01``  taken (the photo's own date) at or after; the value is a period: a
                      year (``2024``), a month (``2023-06``), a day or a time without an
                      offset, on the photographer's clock; ``taken<2024`` is before 2024,
                      ``taken<=2023-06`` up to the end of June, ``taken=2023-06`` in June
``place=Lisbon``      taken in this city or region (case-insensitive; a list: any of them)
``country=PT``        taken in one of these countries (ISO 3166 alpha-2, case-insensitive)
``camera=iPhone``     the camera's make and model contain this (case-insensitive)
``keyword=holiday``   carrying one of these keywords of the photo's own (case-insensitive)
``near=LAT,LON,KM``   taken within KM kilometres of the point (degrees, WGS 84)
``has=gps``           having GPS coordinates; also ``has=taken``, ``has=text`` (a list: all)
====================  =====================================================================

Photos whose file does not say (no date, no GPS) never match a metadata filter.

:func:`filter_expressions` writes a :class:`PayloadFilter` back as expressions, so that a filter
built in Python crosses HTTP as the same strings a person would type.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from indexer.errors import QueryError
from indexer.schema import is_point_id
from indexer.stores.interface import PayloadFilter

_EXPRESSION = re.compile(r"^\s*(?P<key>[A-Za-z_]+)\s*(?P<op>>=|<=|=|>|<)\s*(?P<value>.*?)\s*$")
_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>[A-Za-z]*)$")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "HEIC": "HEIF", "HIF": "HEIF"}
KEYS = (
    "folder",
    "prefix",
    "format",
    "tag",
    "id",
    "mtime",
    "size",
    "taken",
    "place",
    "country",
    "camera",
    "keyword",
    "near",
    "has",
)
HAS_KEYS = {"gps": "location", "taken": "taken_ts", "text": "text"}
"""What ``has=`` names, and the payload key that must then be present."""
MAX_NEAR_KM = 20_050.0
"""Half the Earth's circumference: a larger radius is everywhere."""
_TAKEN = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:[T ](?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?)?)?)?$"
)
MAX_TIMESTAMP = 1e13
"""mtime bounds, in seconds either side of 1970 (about 300,000 years)."""
MAX_SIZE = 10**18
"""The largest size a filter may name (an exabyte: sizes are kept as 64-bit integers)."""


def parse_filters(expressions: Iterable[str]) -> PayloadFilter:
    """Turn filter expressions into one :class:`PayloadFilter` (all must hold).

    Args:
        expressions: E.g. ``["folder=/data/x", "format=JPEG,PNG", "mtime>=2024-01-01"]``.

    Returns:
        The filter; empty when there are no expressions.

    Raises:
        QueryError: An expression that cannot be read, with what is wrong in one line.
    """
    where = PayloadFilter()
    for expression in expressions:
        where = _apply(where, expression)
    return where


def _apply(where: PayloadFilter, expression: str) -> PayloadFilter:
    match = _EXPRESSION.match(expression or "")
    if match is None:
        raise QueryError(
            f"cannot read filter {expression!r}: expected KEY=VALUE or KEY>=VALUE, with KEY one "
            f"of {', '.join(KEYS)}"
        )
    key, op, value = match["key"].lower(), match["op"], match["value"]
    if key not in KEYS:
        raise QueryError(f"unknown filter key {key!r} in {expression!r}: use one of {KEYS}")
    if not value:
        raise QueryError(f"filter {expression!r} has no value")
    if key not in ("mtime", "size", "taken") and op != "=":
        raise QueryError(f"filter {expression!r}: {key} takes '=', not {op!r}")
    if key in ("folder", "prefix"):
        prefix = _folder_prefix(value) if key == "folder" else value
        if where.uri_prefix is not None and where.uri_prefix != prefix:
            raise QueryError(f"two different folders: {where.uri_prefix!r} and {prefix!r}")
        return replace(where, uri_prefix=prefix)
    if key == "format":
        formats = [_FORMAT_ALIASES.get(f.upper(), f.upper()) for f in _items(value, expression)]
        return replace(where, formats=_merge(where.formats, formats))
    if key == "tag":
        return replace(where, tags=_merge(where.tags, _items(value, expression)))
    if key == "id":
        try:
            ids = [int(item) for item in _items(value, expression)]
        except ValueError:
            raise QueryError(f"filter {expression!r}: ids are integers") from None
        if not all(is_point_id(i) for i in ids):
            raise QueryError(f"filter {expression!r}: ids are from 0 to 2**64 - 1")
        return replace(where, ids=_merge(where.ids, ids))
    if key in ("taken", "place", "country", "camera", "keyword", "near", "has"):
        return _apply_metadata(where, key, op, value, expression)
    if key == "mtime":
        moment = _timestamp(value, expression)
        low, high = _range(op, moment, step=lambda t, up: math.nextafter(t, math.inf if up else 0))
        return replace(
            where,
            mtime_min=_max(where.mtime_min, low),
            mtime_max=_min(where.mtime_max, high),
        )
    size = _bytes(value, expression)
    low, high = _range(op, size, step=lambda n, up: n + 1 if up else n - 1)
    return replace(
        where,
        size_min=_max(where.size_min, None if low is None else math.ceil(low)),
        size_max=_min(where.size_max, None if high is None else math.floor(high)),
    )


def _apply_metadata(
    where: PayloadFilter, key: str, op: str, value: str, expression: str
) -> PayloadFilter:
    if key == "taken":
        low, high = _taken_range(op, value, expression)
        return replace(
            where, taken_min=_max(where.taken_min, low), taken_max=_min(where.taken_max, high)
        )
    if key == "place":
        places = [item.lower() for item in _items(value, expression)]
        return replace(where, places=_merge(where.places, places))
    if key == "country":
        countries = [item.upper() for item in _items(value, expression)]
        bad = [c for c in countries if not (len(c) == 2 and c.isascii() and c.isalpha())]
        if bad:
            raise QueryError(
                f"filter {expression!r}: {bad[0]!r} is not a country code (ISO 3166 alpha-2: "
                f"PT, US, JP)"
            )
        return replace(where, countries=_merge(where.countries, countries))
    if key == "camera":
        return replace(where, cameras=_merge(where.cameras, [value.lower()]))
    if key == "keyword":
        keywords = [item.lower() for item in _items(value, expression)]
        return replace(where, keywords=_merge(where.keywords, keywords))
    if key == "near":
        near = _near(value, expression)
        if where.near is not None and where.near != near:
            raise QueryError(f"two different near= filters: {where.near} and {near}")
        return replace(where, near=near)
    names = [item.lower() for item in _items(value, expression)]
    unknown = [name for name in names if name not in HAS_KEYS]
    if unknown:
        raise QueryError(
            f"filter {expression!r}: has= takes {', '.join(HAS_KEYS)}, not {unknown[0]!r}"
        )
    return replace(where, present=_merge(where.present, [HAS_KEYS[name] for name in names]))


def _taken_range(op: str, value: str, expression: str) -> tuple[float | None, float | None]:
    """The inclusive ``taken_ts`` bounds of ``taken OP value``; the value names a period."""
    if _TAKEN.match(value) or not _NUMBER.match(value):
        start, end = _period(value, expression)  # 2024 is a year, not seconds
    else:
        start = float(value)  # seconds, as filter_expressions writes bounds
        if not math.isfinite(start) or abs(start) > MAX_TIMESTAMP:
            raise QueryError(f"filter {expression!r}: {value!r} is not a finite number of seconds")
        end = math.nextafter(start, math.inf)
    before = math.nextafter(start, -math.inf)
    last = math.nextafter(end, -math.inf)
    return {
        ">=": (start, None),
        ">": (end, None),
        "<": (None, before),
        "<=": (None, last),
        "=": (start, last),
    }[op]


def _period(value: str, expression: str) -> tuple[float, float]:
    """The start and the end (exclusive) of a year, month, day or time, in seconds as UTC."""
    match = _TAKEN.match(value)
    try:
        if match is None:
            raise ValueError(value)
        parts = [match[name] for name in ("year", "month", "day", "hour", "minute", "second")]
        given = [int(part) for part in parts if part is not None]
        start = datetime(*given, *[1] * max(0, 3 - len(given)), tzinfo=UTC)  # type: ignore[misc]
        if len(given) == 1:
            end = start.replace(year=start.year + 1)
        elif len(given) == 2:
            end = (start + timedelta(days=32)).replace(day=1)
        else:
            end = start + _PERIOD_STEPS[len(given)]
    except (ValueError, OverflowError):
        raise QueryError(
            f"filter {expression!r}: {value!r} is not a date: give a year (2024), a month "
            f"(2023-06), a day (2023-06-01) or a time (2023-06-01T14:30), without an offset"
        ) from None
    return start.timestamp(), end.timestamp()


_NUMBER = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?$")
_PERIOD_STEPS = {
    3: timedelta(days=1),
    4: timedelta(hours=1),
    5: timedelta(minutes=1),
    6: timedelta(seconds=1),
}


def _near(value: str, expression: str) -> tuple[float, float, float]:
    try:
        lat, lon, km = (float(item) for item in _items(value, expression))
    except ValueError:
        raise QueryError(
            f"filter {expression!r}: near= takes LAT,LON,KM (e.g. near=38.72,-9.14,5)"
        ) from None
    if not all(math.isfinite(v) for v in (lat, lon, km)) or abs(lat) > 90 or abs(lon) > 180:
        raise QueryError(
            f"filter {expression!r}: latitude is -90..90 and longitude -180..180 degrees"
        )
    if not 0 < km <= MAX_NEAR_KM:
        raise QueryError(
            f"filter {expression!r}: the distance is more than 0 and at most {MAX_NEAR_KM:g} km"
        )
    return lat, lon, km


def _range(op: str, value: Any, step: Any) -> tuple[Any, Any]:
    if op == "=":
        return value, value
    if op == ">=":
        return value, None
    if op == ">":
        return step(value, True), None
    if op == "<=":
        return None, value
    return None, step(value, False)


def _items(value: str, expression: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise QueryError(f"filter {expression!r} has an empty item")
    return items


def _merge(old: tuple, new: list) -> tuple:
    return tuple(dict.fromkeys([*old, *new]))


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _folder_prefix(value: str) -> str:
    if "://" in value:
        return value
    path = os.path.abspath(os.path.expanduser(value))
    return path if path.endswith(os.sep) else path + os.sep


def _timestamp(value: str, expression: str) -> float:
    try:
        moment = float(value)
    except ValueError:
        moment = None
    if moment is None:
        try:
            moment = datetime.fromisoformat(value).timestamp()
        except (ValueError, OverflowError, OSError):
            raise QueryError(
                f"filter {expression!r}: {value!r} is not a date (2024-01-01, 2024-01-01T12:00) "
                f"or seconds since the epoch"
            ) from None
    # nan, inf and 1e999 (inf) would reach the store's range filter (Qdrant Edge panics on NaN).
    if not math.isfinite(moment) or abs(moment) > MAX_TIMESTAMP:
        raise QueryError(
            f"filter {expression!r}: {value!r} is not a finite number of seconds "
            f"(at most {MAX_TIMESTAMP:.0e} either side of 1970)"
        )
    return moment


def _bytes(value: str, expression: str) -> int:
    match = _SIZE.match(value.replace("_", ""))
    unit = match["unit"].lower() if match else ""
    if match is None or unit not in _UNITS:
        raise QueryError(
            f"filter {expression!r}: {value!r} is not a size (10000, 500KB, 2MB, 1.5GiB)"
        )
    size = float(match["number"]) * _UNITS[unit]  # 400 digits of 9 make inf
    if not math.isfinite(size) or size > MAX_SIZE:
        raise QueryError(f"filter {expression!r}: {value!r} is larger than any file")
    return round(size)


def filter_expressions(where: PayloadFilter) -> list[str]:
    """The expressions that :func:`parse_filters` turns back into ``where``, exactly.

    Used to send a filter built in Python over HTTP; bounds are written as plain numbers
    (seconds since the epoch, bytes), inclusive.
    """
    expressions: list[str] = []
    if where.uri_prefix is not None:
        expressions.append(f"prefix={where.uri_prefix}")
    if where.formats:
        expressions.append("format=" + ",".join(where.formats))
    if where.tags:
        expressions.append("tag=" + ",".join(where.tags))
    if where.ids:
        expressions.append("id=" + ",".join(str(i) for i in where.ids))
    for key, low, high in (
        ("mtime", where.mtime_min, where.mtime_max),
        ("size", where.size_min, where.size_max),
        ("taken", where.taken_min, where.taken_max),
    ):
        if low is not None:
            expressions.append(f"{key}>={low!r}")
        if high is not None:
            expressions.append(f"{key}<={high!r}")
    if where.places:
        expressions.append("place=" + ",".join(where.places))
    if where.countries:
        expressions.append("country=" + ",".join(where.countries))
    expressions += [f"camera={camera}" for camera in where.cameras]
    if where.keywords:
        expressions.append("keyword=" + ",".join(where.keywords))
    if where.near is not None:
        expressions.append("near=" + ",".join(repr(float(v)) for v in where.near))
    if where.present:
        names = {payload_key: name for name, payload_key in HAS_KEYS.items()}
        expressions.append("has=" + ",".join(names[key] for key in where.present))
    return expressions
