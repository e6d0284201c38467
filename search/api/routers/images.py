"""``GET /images/{id}`` (the original), ``GET /thumbs/{id}`` (cached JPEG thumbnails; a video
frame's is decoded at its time) and ``GET /videos/{id}`` (an indexed video, with Range
requests, for players that seek).

Only images under the collection's trusted roots are served
(:mod:`search.serving.served_images`); every other indexed image answers 404. Images are named
by id only, never by path.
"""

# No "from __future__ import annotations": FastAPI reads the handlers' annotations at run
# time, and some of them use names local to the router factory (the server's limits).

import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.background import BackgroundTask

from indexer.config import Settings
from indexer.schema import POINT_ID_MAX, uri_path
from search.api.dependencies import Server
from search.serving.served_images import NotServable, ServedImages

DEFAULT_THUMBNAIL_SIZE = 256
RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")

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


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``(first, last)`` bytes (inclusive) a Range header asks for; None for the whole file.

    One range only (players ask for one); a header this does not parse is ignored, as
    RFC 9110 allows.

    Raises:
        RangeNotSatisfiable: The range starts past the end of the file.
    """
    match = RANGE_PATTERN.match(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - count), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(size)
    return start, end


class RangeNotSatisfiable(Exception):
    """A Range header that names no byte of the file (416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable (size {size})")
        self.size = size


def local_video(served: ServedImages, uri: str, range_header: str | None) -> Response:
    """An indexed video, whole or the byte range asked for, from the very file checked.

    Raises:
        NotServable: The file may not be served.
    """
    stack = ExitStack()
    opened = stack.enter_context(served.open_video(uri))
    try:
        wanted = byte_range(range_header, opened.size)
    except RangeNotSatisfiable as exc:
        stack.close()
        return Response(status_code=416, headers={"Content-Range": f"bytes */{exc.size}"})
    first, last = wanted if wanted is not None else (0, opened.size - 1)
    opened.file.seek(first)
    length = last - first + 1

    def chunks() -> Iterator[bytes]:
        try:
            left = length
            while left > 0:
                chunk = opened.file.read(min(256 * 1024, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            stack.close()

    headers = {"Content-Length": str(max(0, length)), "Accept-Ranges": "bytes"}
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{opened.size}"
    return StreamingResponse(
        chunks(),
        status_code=206 if wanted is not None else 200,
        media_type=opened.media_type,
        headers=headers,
        background=BackgroundTask(stack.close),
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
        payload = server.client.payload(point_id)
        uri = str(payload.get("uri", ""))
        if payload.get("kind") == "video":  # a frame: its video (as /videos/{id})
            return local_video(server.served, uri, None)
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
        t = payload.get("t") if payload.get("kind") == "video" else None
        data = server.thumbnails.thumbnail(
            point_id,
            str(payload.get("uri", "")),
            str(payload.get("sha256", "")),
            size,
            t=float(t) if isinstance(t, int | float) else None,
        )
        return Response(
            data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"}
        )

    @routes.get(
        "/videos/{point_id}",
        response_class=Response,
        responses={
            200: {"content": {"video/*": {}}},
            206: {"description": "The byte range asked for (Range: bytes=FIRST-LAST)."},
            416: {"description": "A range past the end of the file."},
        },
    )
    def video(
        server: Server,
        point_id: PointId,
        range_header: Annotated[str | None, Header(alias="range")] = None,
    ) -> Response:
        """The video file of an indexed frame (any frame's id names its video), with Range
        requests. Only indexed videos under the collection's trusted folders are served, by id:
        no paths. Play from the moment with ``/videos/{id}#t=SECONDS``."""
        payload = server.client.payload(point_id)
        uri = str(payload.get("uri", ""))
        if payload.get("kind") != "video":
            raise NotServable(uri, "not a video frame")
        return local_video(server.served, uri, range_header)

    return routes
