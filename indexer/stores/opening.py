"""Open the store a location names: the one place that picks a backend."""

from __future__ import annotations

from indexer.config import StoreSettings
from indexer.errors import StoreLockedError, StoreServedError
from indexer.stores.holder import live_server
from indexer.stores.interface import VectorStore
from indexer.stores.location import StoreLocation


def open_store(settings: StoreSettings, *, hold: bool = False) -> VectorStore:
    """Open the store named by ``settings.location``.

    A folder opens the embedded store (:class:`~indexer.stores.edge.EdgeStore`); ``:memory:``
    and an ``http(s)://`` URL open :class:`~indexer.stores.qdrant_server.QdrantClientStore`.
    Backends are imported only when asked for.

    Args:
        settings: Location, collection name, server credentials, layout, disk reserve.
        hold: Take the writer's hold at once (:meth:`VectorStore.hold`): a process that will
            write (an index run, a server) learns now, not after loading a model, that
            another process has the store.

    Returns:
        An open :class:`VectorStore`; close it (or use ``with``) when done. An embedded
        store that this user may not write opens for reading (``read_only``).

    Raises:
        StoreError: The store cannot be opened, or the location is not one of the three kinds.
        StoreServedError: An embedded store is held by a running ``anyshot serve`` (its URL
            is in the error).
        StoreLockedError: An embedded store is open in another process.
        DiskSpaceError: Too little free disk space to open an embedded store safely.
    """
    location = StoreLocation.parse(settings.location)
    if location.folder is None:
        from indexer.stores.qdrant_server import QdrantClientStore

        return QdrantClientStore(
            location.text,
            collection=settings.collection,
            api_key=settings.api_key,
            timeout=settings.timeout,
            scale=settings.scale,
        )
    from indexer.stores.edge import EdgeStore

    store: EdgeStore | None = None
    try:
        store = EdgeStore(
            location.text, scale=settings.scale, reserve_free_mb=settings.reserve_free_mb
        )
        if hold:
            store.hold()
    except StoreLockedError as exc:
        if store is not None:
            store.close()
        server = live_server(location.folder)
        if server is None:
            raise
        raise StoreServedError(location.text, server.url) from exc
    return store
