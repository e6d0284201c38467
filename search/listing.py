"""Images listed by filters alone, and hits put in date order.

A search without a query (no text, image, name or id) is a listing: the images that match its
filters, in id order or, with ``sort``, by the date they were taken. Listed hits have score 0
(nothing was compared). A search with a query and ``sort`` finds its ``k`` best hits first and
then orders them by date, undated ones last.

``sort="taken"`` lists the oldest first, ``sort="-taken"`` the newest first. A listing in
date order holds only images that have a date (``has=taken``).
"""

from __future__ import annotations

import itertools
from typing import Literal

from indexer.errors import QueryError
from indexer.stores.interface import PayloadFilter, VectorStore
from search.messages import SearchRequest
from search.results import Hit, SearchResult

NO_QUERY = (
    "give exactly one query: a text, an image, a name, or an indexed image's id (combine "
    "several as parts), or filters alone to list the images that match them"
)
"""What a search with neither a query nor a filter is told (or with two main queries)."""

Sort = Literal["taken", "-taken"]
SORTS: tuple[str, ...] = ("taken", "-taken")
SORT_KEYS = {"taken": "taken_ts"}
"""What each sort orders by: a numeric payload key."""


def is_listing(request: SearchRequest) -> bool:
    """True when a request has no query (no text, name, image, id, part or negative)."""
    mains = (request.text, request.name, request.image, request.image_url, request.id)
    return all(v is None for v in mains) and not request.parts and not request.negatives


def sort_key(sort: str) -> tuple[str, bool]:
    """The payload key and direction (descending?) of a sort name.

    Raises:
        QueryError: Not one of :data:`SORTS`.
    """
    if sort not in SORTS:
        raise QueryError(f"sort by one of {', '.join(SORTS)}, not {sort!r}")
    return SORT_KEYS[sort.lstrip("-")], sort.startswith("-")


def list_images(
    store: VectorStore,
    where: PayloadFilter,
    *,
    k: int,
    offset: int = 0,
    sort: str | None = None,
) -> SearchResult:
    """The images matching ``where`` (at least one condition), in id or date order.

    Raises:
        QueryError: No filter, or an unknown sort.
    """
    if where.is_empty():
        raise QueryError(NO_QUERY)
    store.require_model()
    if sort is None:
        points = list(itertools.islice(store.scroll(where=where), offset, offset + k))
    else:
        key, descending = sort_key(sort)
        points = store.ordered(key, limit=offset + k, descending=descending, where=where)
        points = points[offset:]
    hits = [Hit(p.id, str(p.payload.get("uri", "")), 0.0, p.payload) for p in points]
    return SearchResult(hits, {"listing": True, "sort": sort})


def sort_hits(hits: list[Hit], sort: str) -> list[Hit]:
    """``hits`` in date order (see :func:`sort_key`), those without a date last, in their
    order."""
    key, descending = sort_key(sort)
    dated = [h for h in hits if isinstance(h.payload.get(key), int | float)]
    undated = [h for h in hits if not isinstance(h.payload.get(key), int | float)]
    dated.sort(key=lambda h: h.payload[key], reverse=descending)
    return dated + undated
