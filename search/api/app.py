"""The HTTP API's app: :func:`create_app` puts the guards, the error handlers and the routers
together over one collection, opened in the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from indexer.config import Settings
from search.api.dependencies import key_dependencies
from search.api.errors import ERROR_RESPONSES, add_error_handlers
from search.api.guards import add_guards
from search.api.routers import (
    clip_back,
    collection,
    concepts,
    health,
    images,
    index,
    page,
    search,
    transfer,
)
from search.serving.state import ServerState


def create_app(settings: Settings | None = None, *, advertise_url: str | None = None) -> FastAPI:
    """Build the HTTP API over one collection.

    Args:
        settings: All settings (``Settings()`` reads ``ANYSHOT_*``); ``settings.api`` holds the
            API's own (key, CORS, limits).
        advertise_url: The URL this server is reached at; with a folder store it is written to
            ``STORE/server.json`` so that others who find the store held hand their work here.

    Returns:
        The FastAPI app; the store opens when it starts and closes when it stops.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.server = ServerState.open(settings, advertise_url=advertise_url)
        try:
            yield
        finally:
            app.state.server.close()

    app = FastAPI(
        title="anyshot",
        summary="Search images by example, by name and by description.",
        version=health.anyshot_version(),
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        docs_url=None,  # served by add_docs, from installed files: no CDN
        redoc_url=None,
    )
    app.state.settings = settings
    add_error_handlers(app)
    add_guards(app, settings)
    app.include_router(health.router)
    keyed = key_dependencies(settings)
    for routes in (
        search.router(settings),
        images.router(settings),
        index.router,
        collection.router,
        concepts.router,
        transfer.router,
        clip_back.router(settings),
    ):
        app.include_router(routes, dependencies=keyed)
    page.add_page(app)
    page.add_docs(app)
    return app
