"""The one walk over a :class:`PayloadFilter` that every backend's native filter comes from.

A backend names its constructors (:class:`FilterConstructors`: a prefix match, a match of any
of some values, a range, a set of ids, and "all of these"); :func:`translate_filter` checks
the filter (issue 11's refusal of bounds that are not finite numbers, ids that name no point)
and builds the native filter with them. So the meaning of each condition is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from indexer.stores.interface import PayloadFilter

Condition = TypeVar("Condition")
Filter = TypeVar("Filter")
Number = float | int


@dataclass(frozen=True)
class FilterConstructors(Generic[Condition, Filter]):
    """How one backend says each kind of condition.

    Attributes:
        prefix: ``prefix(key, text)``: the keyword at ``key`` starts with ``text``.
        any_of: ``any_of(key, values)``: the keyword (or one of the keywords) at ``key`` is
            one of ``values``.
        between: ``between(key, low, high)``: the number at ``key`` is within the inclusive
            bounds (None: unbounded on that side).
        has_id: ``has_id(ids)``: the point's id is one of ``ids``.
        substring: ``substring(key, text)``: the keyword at ``key`` contains ``text``.
        geo_radius: ``geo_radius(key, lat, lon, meters)``: the geo point at ``key`` lies within
            ``meters`` of ``(lat, lon)``.
        present: ``present(key)``: ``key`` holds a value that is not null or empty.
        all_of: ``all_of(conditions)``: the filter that holds when every condition does.
    """

    prefix: Callable[[str, str], Condition]
    any_of: Callable[[str, list[str]], Condition]
    between: Callable[[str, Number | None, Number | None], Condition]
    has_id: Callable[[list[int]], Condition]
    substring: Callable[[str, str], Condition]
    geo_radius: Callable[[str, float, float, float], Condition]
    present: Callable[[str], Condition]
    all_of: Callable[[list[Condition]], Filter]


def translate_filter(
    where: PayloadFilter | None, build: FilterConstructors[Condition, Filter]
) -> Filter | None:
    """Build a backend's filter from ``where``; None when it lets every point through.

    Raises:
        QueryError: A bound is not a finite number, or an id cannot name a point.
    """
    if where is None or where.is_empty():
        return None
    where.check_numbers()
    conditions: list[Condition] = []
    if where.uri_prefix:
        conditions.append(build.prefix("uri", where.uri_prefix))
    keywords: Sequence[tuple[str, tuple[str, ...]]] = (
        ("format", where.formats),
        ("tags", where.tags),
        ("place_lc", where.places),
        ("country", where.countries),
        ("keywords_lc", where.keywords),
    )
    for key, values in keywords:
        if values:
            conditions.append(build.any_of(key, list(values)))
    ranges: Sequence[tuple[str, Number | None, Number | None]] = (
        ("mtime", where.mtime_min, where.mtime_max),
        ("size", where.size_min, where.size_max),
        ("taken_ts", where.taken_min, where.taken_max),
    )
    for key, low, high in ranges:
        if low is not None or high is not None:
            conditions.append(build.between(key, low, high))
    conditions += [build.substring("camera_lc", text) for text in where.cameras]
    if where.near is not None:
        lat, lon, km = where.near
        conditions.append(build.geo_radius("location", lat, lon, km * 1000.0))
    conditions += [build.present(key) for key in where.present]
    if where.ids:
        conditions.append(build.has_id(sorted({int(i) for i in where.ids})))
    return build.all_of(conditions)
