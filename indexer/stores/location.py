"""Store locations, read once: a folder, ``:memory:`` or the URL of a Qdrant server.

Like ``QdrantClient``'s location switch:

- a folder path → the embedded store (Qdrant Edge in this process), the default;
- ``:memory:`` → qdrant-client's in-memory mode (the server code path, offline; nothing
  persists);
- ``http(s)://HOST:PORT`` → a Qdrant server or cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from indexer.errors import StoreError

MEMORY_LOCATION = ":memory:"
SERVER_SCHEMES = ("http", "https")

LocationKind = Literal["folder", "memory", "server"]
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A store location, parsed.

    Attributes:
        text: The location as given, without surrounding spaces.
        kind: ``folder``, ``memory`` or ``server``.
    """

    text: str
    kind: LocationKind

    @classmethod
    def parse(cls, location: str) -> StoreLocation:
        """Read a location.

        Raises:
            StoreError: A URL of another scheme than http(s), or an empty location.
        """
        text = location.strip()
        if not text:
            raise StoreError("the store location is empty: give a folder, :memory: or a URL")
        if text == MEMORY_LOCATION:
            return cls(text, "memory")
        scheme = _SCHEME.match(text)
        if scheme is None:
            return cls(text, "folder")
        if scheme.group(1).lower() in SERVER_SCHEMES:
            return cls(text, "server")
        raise StoreError(
            f"unsupported store location {text!r}: use a folder, {MEMORY_LOCATION} or an "
            f"http(s):// URL"
        )

    @property
    def is_folder(self) -> bool:
        """True for a store folder (the embedded store)."""
        return self.kind == "folder"

    @property
    def is_memory(self) -> bool:
        """True for ``:memory:``, which keeps nothing beyond the process."""
        return self.kind == "memory"

    @property
    def is_server(self) -> bool:
        """True for a Qdrant server, which other processes (Dask workers) can reach too."""
        return self.kind == "server"

    @property
    def folder(self) -> Path | None:
        """The store folder (``~`` expanded, absolute), or None when the store is not one."""
        return Path(self.text).expanduser().absolute() if self.is_folder else None

    def __str__(self) -> str:
        return self.text
