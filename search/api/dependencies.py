"""What the handlers depend on: the server's parts, and the API key as OpenAPI declares it.

The server's parts (:class:`~search.serving.state.ServerState`) are opened in the app's
lifespan; a handler asks for them as ``server: Server`` or for the collection alone as
``client: Client``.

The API key is enforced by :class:`search.api.guards.ApiKeyGuard`, in front of the app, before
a byte of a body is read. :func:`key_dependencies` only declares it: with a key set, every
operation but health, the page and the docs lists the security schemes (header ``X-API-Key``,
or the ``api_key`` query parameter for links such as image URLs), and Swagger UI offers to
send it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery

from indexer.config import Settings
from search.client import ImageSearch
from search.messages import API_KEY_HEADER
from search.serving.state import ServerState

API_KEY_IN_HEADER = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="APIKeyHeader",
    description="The server's API key (anyshot serve --api-key, ANYSHOT_API__API_KEY).",
    auto_error=False,
)
API_KEY_IN_QUERY = APIKeyQuery(
    name="api_key",
    scheme_name="APIKeyQuery",
    description="The API key as a query parameter, for links that cannot carry a header.",
    auto_error=False,
)


async def server_state(request: Request) -> ServerState:
    """The server's parts, opened in the lifespan."""
    return request.app.state.server


async def collection_client(request: Request) -> ImageSearch:
    """The server's collection."""
    return request.app.state.server.client


Server = Annotated[ServerState, Depends(server_state)]
"""A handler's parameter for the server's parts."""
Client = Annotated[ImageSearch, Depends(collection_client)]
"""A handler's parameter for the server's collection."""


async def api_key_declared(
    header: Annotated[str | None, Security(API_KEY_IN_HEADER)],
    query: Annotated[str | None, Security(API_KEY_IN_QUERY)],
) -> None:
    """Declares the API key in OpenAPI; the ASGI guard has checked it already."""


def key_dependencies(settings: Settings) -> list[Any]:
    """The dependencies of operations that need the key: its declaration when a key is set."""
    return [Depends(api_key_declared)] if settings.api.api_key is not None else []
