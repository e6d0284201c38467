"""``GET /images/{id}`` (the original) and ``GET /thumbs/{id}`` (cached JPEG thumbnails).

Only images under the collection's trusted roots are served
(:mod:`search.serving.served_images`); every other indexed image answers 404. Images are named
by id only, never by path.
"""

# No "from __future__ import annotations": FastAPI reads the handlers' annotations at run
# time, and some of them use names local to the router factory (the server's limits).

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.background import BackgroundTask

from indexer.config import Settings
from indexer.schema import POINT_ID_MAX, uri_path
from search.api.dependencies import Server
from search.serving.served_images import NotServable, ServedImages

DEFAULT_THUMBNAIL_SIZE = 256

PointId = Annotated[int, PathParam(ge=0, le=POINT_ID_MAX, description="An indexed id.")]


def local_image(served: ServedImages, uri: str) -> StreamingResponse:
    """A local image file, streamed from the very file that was checked: it stays open until
    its last byte is sent (no second open by path that a swapped link could redirect).

    Raises:
        NotServable: The file may not be served.
    """
    stack = ExitStack()
    opened = stack.enter_context(served.open_local(uri))

    def chunks() -> Iterator[bytes]:
        try:
            yield from opened.chunks()
        finally:
            stack.close()

    return StreamingResponse(
        chunks(),
        media_type=opened.media_type,
        headers={"Content-Length": str(opened.size)},
        background=BackgroundTask(stack.close),  # a client that went away early
    )


def router(settings: Settings) -> APIRouter:
    """The image operations."""
    routes = APIRouter(tags=["images"])

    @routes.get(
        "/images/{point_id}",
        response_class=Response,
        responses={200: {"content": {"image/*": {}}}, 307: {"description": "A web image."}},
    )
    def image(server: Server, point_id: PointId) -> Response:
        """The original image file, with the content type of its format. Only indexed images
        under the collection's trusted folders (or web origins) are served, by id: no paths."""
        uri = str(server.client.payload(point_id).get("uri", ""))
        if uri_path(uri) is not None:
            return local_image(server.served, uri)
        url = server.served.web_url(uri)
        if url is None:
            raise NotServable(uri, "a URL of an origin the collection does not trust")
        return RedirectResponse(url, status_code=307)

    @routes.get(
        "/thumbs/{point_id}",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(
        server: Server,
        point_id: PointId,
        size: Annotated[
            int, Query(ge=16, le=settings.api.max_thumbnail_size, description="Longest edge, px.")
        ] = DEFAULT_THUMBNAIL_SIZE,
    ) -> Response:
        """A JPEG thumbnail of an indexed image, made once and cached."""
        payload = server.client.payload(point_id)
        data = server.thumbnails.thumbnail(
            point_id, str(payload.get("uri", "")), str(payload.get("sha256", "")), size
        )
        return Response(
            data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"}
        )

    return routes
