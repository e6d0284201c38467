"""Paths of the server's machine that a client names: index sources and folders to trust.

A client of the HTTP API names server paths in two places only: the source of an index run
(``POST /index``) and the folders that loaded images may be served from (``POST /load``'s
``trust``). Both follow one rule: an absolute path without NUL characters and, when
``api.index_roots`` is set, one whose real path (every link resolved, the last one too) lies
under one of those roots; a URL (a web source or origin) only when no roots are set.
"""

from __future__ import annotations

import os

from indexer.access import within_roots
from indexer.errors import ConfigError


def check_server_path(entry: str, roots: tuple[str, ...], *, what: str = "source") -> str:
    """Return ``entry`` when a client may name it, else refuse it.

    Args:
        entry: A path on the server's machine, or a URL.
        roots: Real paths of the folders clients may name (``api.index_roots``, resolved);
            empty: any absolute path or URL.
        what: What the entry is, for the error (``source``, ``folder to trust``).

    Raises:
        ConfigError: A NUL character, a relative path, or an entry outside the roots.
    """
    if "\0" in entry:
        raise ConfigError(f"the {what} must be a path without NUL characters")
    is_url = "://" in entry
    if not is_url and not os.path.isabs(entry):
        raise ConfigError(f"the {what} must be an absolute path on the server, not {entry!r}")
    if roots and (is_url or not within_roots(os.path.realpath(entry), roots)):
        raise ConfigError(f"{entry} is outside the folders this server may index")
    return entry
