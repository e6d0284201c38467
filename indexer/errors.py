"""Errors raised by anyshot.

Every error anyshot raises on purpose derives from :class:`AnyshotError`, so a shell (CLI, HTTP
API) needs one ``except`` at its edge. Third-party errors are wrapped at the boundary with
``raise ... from exc``.

The tree::

    AnyshotError
    ├── ConfigError                 a setting or argument that cannot work
    ├── SourceError                 a folder or list of images that cannot be read
    ├── ImageDecodeError            one image that cannot be decoded (path, reason)
    │   └── VideoDecodeError        one video with no frame that can be indexed
    ├── ModelError                  a model that cannot be loaded
    │   └── ModelUnavailableError   weights not cached and not downloadable
    ├── StoreError                  the vector store failed
    │   ├── StoreLockedError        an embedded store already opened by another process
    │   │   └── StoreServedError    ... by a running ``anyshot serve`` (url)
    │   ├── StoreNotFoundError      no collection at that location
    │   ├── StoreReadOnlyError      a write to a store opened read-only
    │   ├── DiskSpaceError          too little free disk space to write safely
    │   └── ModelMismatchError      the store was built by another model
    ├── QueryError                  a query that cannot be answered (empty text, unknown id, ...)
    ├── BusyError                   at a limit of concurrent work (downloads, decodes): retry
    └── ParquetError                a Parquet shard that cannot be written or read
"""

from __future__ import annotations

from shlex import quote


class AnyshotError(Exception):
    """Root of all anyshot errors."""


class ConfigError(AnyshotError):
    """A setting or argument that cannot work."""


class SourceError(AnyshotError):
    """A source of images (folder, list file) that cannot be read."""


class ImageDecodeError(AnyshotError):
    """One image that cannot be decoded.

    Attributes:
        path: Where the image came from (a path or URI).
        reason: A short human-readable reason, e.g. ``"truncated file"``.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class VideoDecodeError(ImageDecodeError):
    """One video of which no frame can be indexed (see :mod:`indexer.video`)."""


class ModelError(AnyshotError):
    """A model that cannot be loaded or run."""


class ModelUnavailableError(ModelError):
    """Model weights that are neither cached nor downloadable right now."""


class StoreError(AnyshotError):
    """The vector store failed."""


class StoreLockedError(StoreError):
    """An embedded store that another process holds open for writing."""


class StoreServedError(StoreLockedError):
    """An embedded store that a running ``anyshot serve`` holds: work goes through the server.

    Attributes:
        location: The store folder, as given.
        url: The server's base URL.
    """

    def __init__(self, location: str, url: str, *, source: str | None = None) -> None:
        command = f"anyshot index {quote(source) if source else 'SOURCE'} --store {quote(location)}"
        super().__init__(
            f"{location} is open in another process: anyshot serve at {url} holds it; index "
            f"through the server ({command} hands the run to it) or search it at {url}/"
        )
        self.location = location
        self.url = url


class StoreNotFoundError(StoreError):
    """No collection exists at the given location."""


class StoreReadOnlyError(StoreError):
    """A write to a store that could only be opened for reading."""


class DiskSpaceError(StoreError):
    """Too little free disk space to write without risking the store.

    Attributes:
        free: Free bytes on the device.
        needed: Bytes the write needed (its estimate plus the reserve).
    """

    def __init__(self, message: str, *, free: int, needed: int) -> None:
        super().__init__(message)
        self.free = free
        self.needed = needed


class ModelMismatchError(StoreError):
    """The store was built with another model than the one asked for.

    Attributes:
        stored: Identity of the model that built the store.
        requested: Identity of the model the caller uses.
    """

    def __init__(self, stored: str, requested: str) -> None:
        super().__init__(
            f"this collection was built with model {stored!r}, not {requested!r}: "
            f"pass --model {stored!r} (or ANYSHOT_MODEL__NAME), or index into a new store"
        )
        self.stored = stored
        self.requested = requested


class QueryError(AnyshotError):
    """A query that cannot be answered as given."""


class BusyError(AnyshotError):
    """A limit of concurrent work (downloads, image decodes) is reached; try again later."""


class ParquetError(AnyshotError):
    """A Parquet shard that cannot be written or read."""
