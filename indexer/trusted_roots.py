"""The folders and web origins a collection was indexed from: all that a server may serve.

A payload's ``uri`` proves nothing: payloads travel in snapshots (``anyshot export``/``load``),
and a crafted one may name ``/etc/shadow``. So a store keeps, as its ``trusted-roots``
document, the real folders (links resolved) and the web origins (``https://host:port``) of the
images that index runs on this machine found, plus what ``anyshot load --trust`` added. Only
local actions write it, and export/load never carry it. The HTTP API serves an image only if
its file lies under one of these folders (or its URL has one of these origins), is a regular
file and decodes as an image.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterable

from indexer.errors import ConfigError
from indexer.schema import ImageRecord, uri_path
from indexer.stores.interface import VectorStore

TRUSTED_ROOTS_DOCUMENT = "trusted-roots"
"""Name of the store document that lists the trusted roots."""


def origin_of(url: str) -> str | None:
    """The origin (``scheme://host[:port]``, lower case, default port left out) of an http(s)
    URL, or None for anything else."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def root_of(entry: str) -> str:
    """A root as it is kept: an origin for a URL, else the real path of a folder.

    Raises:
        ConfigError: A URL that is not http(s), or a relative path.
    """
    if "://" in entry:
        origin = origin_of(entry)
        if origin is None:
            raise ConfigError(f"cannot trust {entry!r}: give a folder or an http(s) origin")
        return origin
    path = os.path.expanduser(entry)
    if not os.path.isabs(path):
        path = os.path.abspath(path)
    return os.path.realpath(path)


def roots_of_records(records: Iterable[ImageRecord], *, folder: str | None = None) -> set[str]:
    """The roots that cover a run's images: their folders' real paths and their URLs' origins.

    Args:
        records: The images a run found.
        folder: The run's source folder, if it was one: its real path is a root too.
    """
    roots: set[str] = set()
    if folder is not None:
        roots.add(os.path.realpath(folder))
    real_dirs: dict[str, str] = {}
    for record in records:
        path = uri_path(record.uri)
        if path is None:
            origin = origin_of(record.uri)
            if origin is not None:
                roots.add(origin)
            continue
        parent = os.path.dirname(path)
        if parent not in real_dirs:
            real_dirs[parent] = os.path.realpath(parent)
    roots.update(real_dirs.values())
    return roots


def compact_roots(roots: Iterable[str]) -> list[str]:
    """Sorted roots without the folders that lie under another root of the list."""
    origins = sorted({r for r in roots if "://" in r})
    folders: list[str] = []
    for folder in sorted({r.rstrip(os.sep) or os.sep for r in roots if "://" not in r}):
        if not any(
            folder == kept or folder.startswith(kept.rstrip(os.sep) + os.sep) for kept in folders
        ):
            folders.append(folder)
    return folders + origins


def read_trusted_roots(store: VectorStore) -> tuple[str, ...]:
    """The store's trusted roots (empty for a store that has none yet)."""
    document = store.read_document(TRUSTED_ROOTS_DOCUMENT) or {}
    roots = document.get("roots")
    if not isinstance(roots, list):
        return ()
    return tuple(str(root) for root in roots if isinstance(root, str) and root)


def trust_roots(store: VectorStore, roots: Iterable[str]) -> tuple[str, ...]:
    """Add roots (folders' real paths, origins) to the store's list; returns the new list.

    Writes only when the list changes. The store must hold a collection.
    """
    current = read_trusted_roots(store)
    merged = compact_roots([*current, *roots])
    if merged != list(current):
        store.write_document(TRUSTED_ROOTS_DOCUMENT, {"roots": merged, "updated": time.time()})
    return tuple(merged)


def split_roots(roots: Iterable[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """(folders, origins) of a list of roots."""
    roots = list(roots)
    return (
        tuple(r for r in roots if "://" not in r),
        frozenset(r for r in roots if "://" in r),
    )
