"""Everything a running server holds: its client and the helpers around it, opened together.

:meth:`ServerState.open` is what the HTTP API's lifespan calls: the client holds the store for
the whole run (:meth:`search.client.ImageSearch.for_server`), index runs go to a background
thread (:mod:`search.serving.index_jobs`), and images are served, thumbnailed and read from
requests under the server's limits (:mod:`search.serving.served_images`,
:mod:`search.serving.thumbnails`, :mod:`search.serving.example_images`).
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.access import AccessPolicy, resolve_roots
from indexer.config import Settings
from search.client import ImageSearch
from search.serving.example_images import DECODE_WAIT_SECONDS, ExampleImages
from search.serving.index_jobs import IndexJobs
from search.serving.served_images import ServedImages
from search.serving.thumbnails import ThumbnailCache, thumbnail_dir
from search.serving.work_limits import WorkLimiter

THUMBNAIL_WAIT_SECONDS = 30.0
"""How long a thumbnail waits for a decode slot before the request gets 429."""


@dataclass
class ServerState:
    """A server's client and helpers.

    Attributes:
        settings: The server's settings.
        client: The collection, held for the whole run.
        index_roots: Real paths of ``api.index_roots``: the folders clients may name (index
            sources, folders to trust); empty: any.
        jobs: Index runs in a background thread.
        served: Which indexed images may be handed out.
        examples: Example images of requests, read under limits.
        thumbnails: Cached thumbnails of servable images.
    """

    settings: Settings
    client: ImageSearch
    index_roots: tuple[str, ...]
    jobs: IndexJobs
    served: ServedImages
    examples: ExampleImages
    thumbnails: ThumbnailCache

    @classmethod
    def open(cls, settings: Settings, *, advertise_url: str | None = None) -> ServerState:
        """Open the collection for serving and start the index-run thread.

        Args:
            settings: The server's settings.
            advertise_url: The URL the server is reached at (written to ``server.json`` of a
                store folder).

        Raises:
            StoreServedError, StoreLockedError: Another process holds the store folder.
        """
        api = settings.api
        downloads = WorkLimiter(
            api.max_concurrent_downloads, what="downloads", setting="api.max_concurrent_downloads"
        )
        client = ImageSearch.for_server(settings, advertise_url=advertise_url)
        try:
            served = ServedImages(client.trusted_roots, api, downloads)
            served.refresh()
            served.warn_if_unrecorded(indexed=client.collection_model() is not None)
            roots = resolve_roots(api.index_roots)
            jobs = IndexJobs(
                client,
                allowed_roots=roots,
                access=AccessPolicy.for_server(api, roots=api.index_roots),
                on_finished=served.refresh,  # a run records the roots it read: serve them now
            )
        except BaseException:
            client.close()
            raise
        return cls(
            settings=settings,
            client=client,
            index_roots=roots,
            jobs=jobs,
            served=served,
            examples=ExampleImages(
                api, downloads=downloads, decodes=decode_limit(settings, DECODE_WAIT_SECONDS)
            ),
            thumbnails=ThumbnailCache(
                thumbnail_dir(settings),
                served,
                decodes=decode_limit(settings, THUMBNAIL_WAIT_SECONDS, what="thumbnail decodes"),
            ),
        )

    def close(self) -> None:
        """Stop the index runs (the running one after its batch) and release the store."""
        try:
            self.jobs.close()
        finally:
            self.client.close()


def decode_limit(settings: Settings, wait: float, *, what: str = "image decodes") -> WorkLimiter:
    """A limit of ``api.max_concurrent_decodes`` decodes at once, waiting ``wait`` seconds."""
    return WorkLimiter(
        settings.api.max_concurrent_decodes,
        what=what,
        setting="api.max_concurrent_decodes",
        wait=wait,
    )
