"""The vector store interface: what every backend offers, and the types it speaks in.

This module imports no backend. The backends (:mod:`indexer.stores.edge`,
:mod:`indexer.stores.qdrant_server`, the thread-safe wrapper :mod:`indexer.stores.serialized`)
implement :class:`VectorStore`; :func:`indexer.stores.opening.open_store` picks one from a
store location.

Every backend stores the schema of :mod:`indexer.schema` and records which model built it:
:meth:`VectorStore.bind_model` refuses vectors of any other model.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from indexer.errors import (
    ModelMismatchError,
    QueryError,
    StoreError,
    StoreNotFoundError,
    StoreReadOnlyError,
)
from indexer.schema import ModelIdentity, is_point_id

DOCUMENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Names of documents kept with a collection (:meth:`VectorStore.write_document`)."""


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point read back from the store."""

    id: int
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class ScoredPoint:
    """A point found by a vector search, with its cosine similarity to the query."""

    id: int
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PayloadFilter:
    """Conditions on the payload; all given conditions must hold.

    Attributes:
        uri_prefix: Only images whose URI starts with this (a folder, say).
        formats: Only these image formats (``JPEG``, ``PNG``, ...).
        tags: Only images carrying at least one of these tags.
        mtime_min, mtime_max: Modification time range (seconds since the epoch), inclusive.
        size_min, size_max: File size range in bytes, inclusive.
        ids: Only these point ids.
        taken_min, taken_max: Date-taken range (``taken_ts``: the wall-clock time of the shot
            in seconds, counted as if it were UTC), inclusive.
        places: Only photos whose place or region (lower-cased ``place_lc``) is one of these.
        countries: Only photos taken in one of these countries (ISO 3166 alpha-2, upper case).
        cameras: Lower-cased texts that the camera's lower-cased name must each contain.
        keywords: Only photos carrying at least one of these keywords (lower-cased).
        near: ``(lat, lon, km)``: only photos taken within ``km`` of the point.
        present: Payload keys that must be present and not empty (``location``, ``taken_ts``,
            ``text``).
    """

    uri_prefix: str | None = None
    formats: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    mtime_min: float | None = None
    mtime_max: float | None = None
    size_min: int | None = None
    size_max: int | None = None
    ids: tuple[int, ...] = ()
    taken_min: float | None = None
    taken_max: float | None = None
    places: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    cameras: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    near: tuple[float, float, float] | None = None
    present: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """True when the filter lets every point through."""
        return self == PayloadFilter()

    def check_numbers(self) -> None:
        """Refuse bounds that are not finite numbers (a NaN in a range panics Qdrant Edge),
        and ids that cannot name a point (:data:`indexer.schema.POINT_ID_LIMIT`).

        Raises:
            QueryError: A bound is NaN, infinite, or beyond 64 bits; an id is out of range.
        """
        for value in self.ids:
            if not is_point_id(value):
                raise QueryError(f"filter ids must be from 0 to 2**64 - 1, not {value!r}")
        if self.near is not None:
            lat, lon, km = self.near
            if not all(_finite(v) for v in self.near) or abs(lat) > 90 or abs(lon) > 180:
                raise QueryError(f"near needs a latitude, a longitude and km, not {self.near}")
            if km <= 0:
                raise QueryError(f"near needs a positive distance in km, not {km!r}")
        for name in ("mtime_min", "mtime_max", "size_min", "size_max", "taken_min", "taken_max"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                finite = -(2**63) <= value < 2**63
            else:
                try:
                    finite = math.isfinite(value)
                except (TypeError, OverflowError):
                    finite = False
            if not finite:
                raise QueryError(f"filter {name} must be a finite number, not {value!r}")


def _finite(value: object) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(value)  # type: ignore[arg-type]
    except (TypeError, OverflowError):
        return False


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store holds."""

    location: str
    backend: str
    model: ModelIdentity | None
    points: int
    indexed_vectors: int | None = None
    disk_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class VectorStore(abc.ABC):
    """A collection of image vectors with payloads. Use it as a context manager.

    Attributes:
        read_only: True when the store could only be opened for reading (searches work,
            every write raises :class:`StoreReadOnlyError`).
        read_only_reason: Why, e.g. ``a read-only file system``.
    """

    backend: str = "abstract"
    read_only: bool = False
    read_only_reason: str = ""

    def __init__(self, location: str) -> None:
        self.location = location

    def require_writable(self) -> None:
        """Raise :class:`StoreReadOnlyError` when the store was opened for reading only."""
        if self.read_only:
            raise StoreReadOnlyError(
                f"{self.location} is read-only ({self.read_only_reason}): search and info "
                f"work, but writing (index, load, tag, concepts) needs a store folder and files "
                f"this user may write"
            )

    # -- model binding -------------------------------------------------------------------------

    @abc.abstractmethod
    def model(self) -> ModelIdentity | None:
        """Return the identity of the model that built this collection, or None if empty."""

    @abc.abstractmethod
    def _create(self, identity: ModelIdentity) -> None:
        """Create the collection for vectors of ``identity`` and record it."""

    def bind_model(self, identity: ModelIdentity) -> None:
        """Create the collection for ``identity``, or check that it was built by it.

        Raises:
            ModelMismatchError: The collection was built by another model.
        """
        stored = self.model()
        if stored is None:
            self._create(identity)
        elif not stored.is_compatible(identity):
            raise ModelMismatchError(stored.label, identity.label)

    def require_model(self) -> ModelIdentity:
        """Return the collection's model.

        Raises:
            StoreNotFoundError: Nothing was indexed at this location yet.
        """
        stored = self.model()
        if stored is None:
            raise StoreNotFoundError(
                f"no collection at {self.location}: index images first (anyshot index FOLDER "
                f"--store {self.location})"
            )
        return stored

    # -- points --------------------------------------------------------------------------------

    @abc.abstractmethod
    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        """Insert or replace points; the same id twice never makes two points."""

    @abc.abstractmethod
    def delete(self, ids: Sequence[int]) -> None:
        """Delete points by id; unknown ids are ignored."""

    @abc.abstractmethod
    def search(
        self,
        vector: np.ndarray,
        *,
        limit: int,
        offset: int = 0,
        where: PayloadFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[ScoredPoint]:
        """Return the points nearest to ``vector``, best first."""

    @abc.abstractmethod
    def retrieve(self, ids: Sequence[int], *, with_vectors: bool = False) -> list[StoredPoint]:
        """Return the points with these ids that exist, in the order asked."""

    @abc.abstractmethod
    def scroll(
        self,
        *,
        batch_size: int = 1024,
        with_vectors: bool = False,
        where: PayloadFilter | None = None,
        start: int | None = None,
    ) -> Iterator[StoredPoint]:
        """Iterate over all points (matching ``where``) in id order, from id ``start`` on
        (inclusive; None: the first)."""

    def ordered(
        self,
        key: str,
        *,
        limit: int,
        descending: bool = False,
        where: PayloadFilter | None = None,
    ) -> list[StoredPoint]:
        """The first ``limit`` points (matching ``where``) by the number at payload ``key``;
        points without it are left out. Backends with a native ``order_by`` override this
        scroll-and-sort."""
        points = [
            p
            for p in self.scroll(where=where)
            if isinstance(p.payload.get(key), int | float)
            and not isinstance(p.payload.get(key), bool)
        ]
        points.sort(key=lambda p: (p.payload[key], p.id), reverse=descending)
        return points[:limit]

    @abc.abstractmethod
    def count(self, where: PayloadFilter | None = None) -> int:
        """Return the number of points (matching ``where``)."""

    @abc.abstractmethod
    def set_payload(self, ids: Sequence[int], payload: dict[str, Any]) -> None:
        """Set payload keys on existing points (other keys are kept)."""

    def search_batch(
        self,
        vectors: np.ndarray,
        *,
        limit: int,
        where: PayloadFilter | None = None,
        score_threshold: float | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        """Run one search per row of ``vectors``; backends with a batch call override this.

        ``with_payload=False`` leaves the payloads empty (cheaper, for ranking only)."""
        return [
            self.search(vector, limit=limit, where=where, score_threshold=score_threshold)
            for vector in np.asarray(vectors, dtype=np.float32)
        ]

    # -- documents -----------------------------------------------------------------------------

    @abc.abstractmethod
    def read_document(self, name: str) -> dict[str, Any] | None:
        """Return a small JSON document kept with the collection (concepts, ...), or None.

        Args:
            name: The document's name (letters, digits, ``_`` and ``-``).
        """

    @abc.abstractmethod
    def write_document(self, name: str, document: dict[str, Any] | None) -> None:
        """Replace a small JSON document kept with the collection; None deletes it.

        Documents live and move with the collection (a file in a store folder, collection
        metadata on a server), not in the points.

        Raises:
            StoreNotFoundError: The store holds no collection yet.
        """

    # -- lifecycle -----------------------------------------------------------------------------

    def hold(self) -> None:  # noqa: B027 - only the embedded store has anything to hold
        """Take what a writer needs before it writes, even before a collection exists: an
        embedded store locks its folder (one writer per folder). Other backends need nothing.

        Raises:
            StoreLockedError: Another process has this store open.
        """

    def optimize(self) -> bool:
        """Build or refresh the search index where the backend needs it; True if work was done."""
        return False

    def index_payload_key(self, key: str) -> None:  # noqa: B027 - where indexes exist
        """Index a payload key of :data:`~indexer.schema.ON_DEMAND_PAYLOAD_KEYS` if it is not
        indexed yet (backends without payload indexes: nothing)."""

    def flush(self) -> None:  # noqa: B027 - most backends write through
        """Make all changes durable."""

    @abc.abstractmethod
    def info(self) -> StoreInfo:
        """Return what the store holds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store; the object is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_document_name(name: str) -> str:
    """Return ``name`` if it may name a document, else raise StoreError."""
    if not DOCUMENT_NAME.match(name):
        raise StoreError(f"invalid document name {name!r}: use letters, digits, '_' and '-'")
    return name
