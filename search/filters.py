"""Filter expressions (``folder=/data/x``, ``size<2MB``, ...) parsed into a :class:`PayloadFilter`.

One expression per string, ``KEY OP VALUE``; all expressions must hold:

====================  =====================================================================
expression            meaning
====================  =====================================================================
``folder=PATH``       images under this folder (or URL prefix); relative paths are made
                      absolute, as the indexer stores them
``prefix=TEXT``       images whose URI starts with TEXT, exactly as given
``format=JPEG,PNG``   one of these formats (case-insensitive; ``JPG`` means ``JPEG``)
``tag=cat,dog``       carrying at least one of these tags (repeat ``tag=``: also any of them)
``id=1,2``            only these indexed images
``mtime>=DATE``       modified at or after DATE (``2024-01-01``, ``2024-01-01T12:00``, ISO
                      with an offset, or seconds since the epoch); ``>``, ``<``, ``<=`` too;
                      dates without an offset are local time
``size<2MB``          file size; units ``B``, ``KB``/``MB``/``GB`` (powers of 1000) and
                      ``KiB``/``MiB``/``GiB`` (powers of 1024); ``>=``, ``>``, ``<=``, ``=``
====================  =====================================================================

:func:`filter_expressions` writes a :class:`PayloadFilter` back as expressions, so that a filter
built in Python crosses HTTP as the same strings a person would type.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
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
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
KEYS = ("folder", "prefix", "format", "tag", "id", "mtime", "size")
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
    if key in ("folder", "prefix", "format", "tag", "id") and op != "=":
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
    ):
        if low is not None:
            expressions.append(f"{key}>={low!r}")
        if high is not None:
            expressions.append(f"{key}<={high!r}")
    return expressions
