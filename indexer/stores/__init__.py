"""Vector stores: the interface, where a store is, and the backends behind it.

=======================  ======================================================================
``interface``            :class:`VectorStore` and its types (imports no backend)
``location``             :class:`StoreLocation`: a folder, ``:memory:`` or a server URL
``opening``              :func:`open_store`: the one place that picks a backend
``edge``                 the embedded store (Qdrant Edge in this process), one writer
``edge_layout``          a Qdrant Edge shard's configuration from the scale settings
``folder_lock``          the lock file of a store folder
``shard_copy``           a private copy of a read-only store's shard, for searching it
``qdrant_server``        a Qdrant server or cluster, or qdrant-client's ``:memory:`` mode
``serialized``           a store shared by threads, one call at a time
``filter_translation``   the one walk from a :class:`PayloadFilter` to a backend's filter
``holder``               ``server.json``: which ``anyshot serve`` holds a store folder
=======================  ======================================================================

Public names are imported lazily, so that ``import indexer.stores`` loads no backend.
"""

from __future__ import annotations

from indexer.lazy_exports import lazy_exports

_EXPORTS = {
    "VectorStore": "indexer.stores.interface",
    "PayloadFilter": "indexer.stores.interface",
    "StoredPoint": "indexer.stores.interface",
    "ScoredPoint": "indexer.stores.interface",
    "StoreInfo": "indexer.stores.interface",
    "StoreLocation": "indexer.stores.location",
    "MEMORY_LOCATION": "indexer.stores.location",
    "open_store": "indexer.stores.opening",
    "ServerAddress": "indexer.stores.holder",
    "advertise_server": "indexer.stores.holder",
    "withdraw_server": "indexer.stores.holder",
    "find_server": "indexer.stores.holder",
    "live_server": "indexer.stores.holder",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
