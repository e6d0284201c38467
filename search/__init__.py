"""anyshot's search layer: the query engine and the Python client (the CLI and API wrap it).

Public names are imported lazily, so the CLI's ``--help`` does not load torch.
"""

from __future__ import annotations

from indexer.lazy_exports import lazy_exports

_EXPORTS = {
    "ImageSearch": "search.client",
    "Hit": "search.engine",
    "ImageInput": "search.engine",
    "SearchEngine": "search.engine",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
