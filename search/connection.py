"""``connect``: one call that returns the right client for a location.

::

    from search import connect

    with connect("/data/photos-index") as client:      # a store folder, served or not
        for hit in client.search("a dog on a beach", k=5):
            print(hit.id, hit.score, hit.uri)

The location is read once (:class:`~indexer.stores.location.StoreLocation`):

- ``:memory:`` → :class:`~search.client.ImageSearch` in this process;
- a folder → :class:`~search.client.ImageSearch` on the embedded store, unless a running
  ``anyshot serve`` holds it (its ``server.json`` names it and it answers as anyshot): then
  :class:`~search.remote_client.RemoteImageSearch` over that server's URL;
- an ``http(s)://`` URL → ``GET URL/healthz``: an anyshot server says so (``"service":
  "anyshot"``) and gets :class:`~search.remote_client.RemoteImageSearch`; anything else is taken
  for a Qdrant server, searched by :class:`~search.client.ImageSearch` in this process.

Either way the client has one face (:class:`~search.face.CollectionClient`).
"""

from __future__ import annotations

import os
from pathlib import Path

from indexer.config import Settings
from indexer.errors import StoreServedError
from indexer.stores.location import StoreLocation
from search.face import CollectionClient


def connect(
    location: str | os.PathLike[str] | None = None,
    *,
    settings: Settings | None = None,
    api_key: str | None = None,
) -> CollectionClient:
    """Open the collection at ``location``, wherever and however it is kept.

    Args:
        location: A store folder, ``:memory:``, a Qdrant server URL, or the URL of a running
            ``anyshot serve``; None: ``settings.store.location``.
        settings: All settings (``Settings()`` reads ``ANYSHOT_*`` variables); its store
            location is replaced by ``location`` when that is given.
        api_key: The key of an ``anyshot serve`` that needs one; None: ``settings.api.api_key``.
            (A Qdrant server's key is ``settings.store.api_key``.)

    Returns:
        A client with the face of :class:`~search.face.CollectionClient`; close it, or use it
        as a context manager.

    Raises:
        StoreError: The location is not one of the three kinds, or the store cannot be opened.
        StoreServedError: A running ``anyshot serve`` holds the folder but does not answer
            (its ``server.json`` names a live process).
        StoreLockedError: Another process (not a server) holds the folder.
    """
    settings = settings_for(location, settings)
    parsed = StoreLocation.parse(settings.store.location)
    key = api_key if api_key is not None else settings_api_key(settings)
    if parsed.is_server:
        from search.remote_client import RemoteImageSearch, anyshot_health

        if anyshot_health(parsed.text) is not None:
            return RemoteImageSearch(parsed.text, api_key=key)
        return open_local(settings)
    if parsed.folder is not None:
        served = served_folder(parsed.text, parsed.folder, key)
        if served is not None:
            return served
    return open_local(settings)


def served_folder(location: str, folder: Path, api_key: str | None) -> CollectionClient | None:
    """The client of the ``anyshot serve`` that holds a store folder, if one does.

    The server's ``server.json`` is read before the store is opened: a server holds an empty
    folder too (it will index into it), which opening it here would not notice.

    Raises:
        StoreServedError: ``server.json`` names a running process that does not answer as
            anyshot at its URL: the folder is held, and the work cannot go there.
    """
    from indexer.stores.holder import live_server

    server = live_server(folder)
    if server is None:
        return None  # nobody, or a server that was killed: the store opens here
    from search.remote_client import RemoteImageSearch

    remote = RemoteImageSearch(server.url, api_key=api_key)
    if remote.healthy():
        return remote
    remote.close()
    raise StoreServedError(location, server.url)


def settings_for(location: str | os.PathLike[str] | None, settings: Settings | None) -> Settings:
    """The settings with their store location replaced by ``location`` (when given)."""
    settings = settings if settings is not None else Settings()
    if location is None:
        return settings
    store = settings.store.model_copy(update={"location": os.fspath(location)})
    return settings.model_copy(update={"store": store})


def settings_api_key(settings: Settings) -> str | None:
    """The API key of ``anyshot serve`` in the settings, as text."""
    key = settings.api.api_key
    return key.get_secret_value() if key is not None else None


def open_local(settings: Settings) -> CollectionClient:
    """The in-process client (imported here: it is the heavier of the two)."""
    from search.client import ImageSearch

    return ImageSearch(settings)
