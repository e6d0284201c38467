"""Searching: ``GET /search``, ``POST /search`` (the one query shape) and ``POST /search/image``.

Every form becomes a :class:`~search.messages.SearchRequest`, answered by the collection with
the request's example images read under the server's limits
(:meth:`search.serving.example_images.ExampleImages.reader`).
"""

# No "from __future__ import annotations": FastAPI reads the handlers' annotations at run
# time, and some of them use names local to the router factory (the server's limits).

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from indexer.config import ApiSettings, Settings
from indexer.errors import QueryError
from indexer.schema import POINT_ID_MAX
from search.api.dependencies import Server
from search.messages import (
    MAX_OCR_CHARS,
    MAX_QUERY_PARTS,
    MAX_TEXT_CHARS,
    HitBody,
    SearchReply,
    SearchRequest,
    image_text,
)
from search.results import Hit
from search.serving.state import ServerState


def hit_body(hit: Hit) -> HitBody:
    """A hit as the API returns it, with links to the image and its thumbnail; a video's
    ``image_url`` plays the video from the moment (``/videos/{id}#t=SECONDS``)."""
    t = hit.t
    original = f"/images/{hit.id}" if t is None else f"/videos/{hit.id}#t={t:g}"
    return HitBody.model_validate(
        hit.to_dict() | {"image_url": original, "thumbnail_url": f"/thumbs/{hit.id}"}
    )


def search_request(**values: Any) -> SearchRequest:
    """A :class:`SearchRequest` from a form's values.

    Raises:
        RequestValidationError: A value the request does not take (422).
    """
    try:
        return SearchRequest(**values)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


def check_window(request: SearchRequest, limits: ApiSettings) -> None:
    """Refuse a search deeper than the server's limits.

    Raises:
        QueryError: ``k`` over ``api.max_k`` or ``offset`` over ``api.max_offset``.
    """
    if request.k > limits.max_k:
        raise QueryError(f"k must be at most {limits.max_k}")
    if request.offset > limits.max_offset:
        raise QueryError(f"offset must be at most {limits.max_offset}")


def answer(server: ServerState, request: SearchRequest) -> list[Hit]:
    """The hits of a request (``explain`` left out)."""
    check_window(request, server.settings.api)
    return server.client.answer(request, examples=server.examples.reader()).hits


def search_reply(server: ServerState, request: SearchRequest) -> SearchReply:
    """Answer a request as ``/search`` replies: hits with links, ``explain`` when asked."""
    check_window(request, server.settings.api)
    result = server.client.answer(request, examples=server.examples.reader())
    return SearchReply(
        hits=[hit_body(hit) for hit in result.hits],
        explain=result.explain if request.explain else None,
    )


def read_upload(file: UploadFile, limit: int) -> bytes:
    """An uploaded file's bytes, read no further than ``limit``.

    Raises:
        QueryError: Empty, or larger than ``limit``.
    """
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise QueryError(f"the image is larger than {limit} bytes")
    if not data:
        raise QueryError("the uploaded image is empty")
    return data


def router(settings: Settings) -> APIRouter:
    """The search operations, with the server's limits in their parameters."""
    routes = APIRouter(tags=["search"])
    add_search_by_query(routes, settings.api)
    routes.add_api_route("/search", search_post, methods=["POST"])
    add_search_by_upload(routes, settings.api)
    return routes


def search_post(server: Server, body: SearchRequest) -> SearchReply:
    """Search by text, name, a base64 image, an image URL, an indexed id or weighted parts."""
    return search_reply(server, body)


def add_search_by_query(routes: APIRouter, limits: ApiSettings) -> None:
    """``GET /search``: a description, a name or an id in the query string."""
    K = Annotated[int, Query(ge=1, le=limits.max_k, description="How many results.")]
    Offset = Annotated[
        int, Query(ge=0, le=limits.max_offset, description="Skip this many results.")
    ]
    Texts = Annotated[
        list[str], Query(alias="not", max_length=MAX_QUERY_PARTS, description="Texts to avoid.")
    ]
    Filters = Annotated[
        list[str], Query(alias="filter", max_length=32, description="Payload filters.")
    ]

    @routes.get("/search")
    def search_get(
        server: Server,
        q: Annotated[
            str | None, Query(max_length=MAX_TEXT_CHARS, description="A description.")
        ] = None,
        name: Annotated[str | None, Query(max_length=1_000, description="A name.")] = None,
        id: Annotated[
            int | None, Query(ge=0, le=POINT_ID_MAX, description="More like this indexed image.")
        ] = None,
        negatives: Texts = [],  # noqa: B006 - FastAPI copies defaults
        filters: Filters = [],  # noqa: B006
        k: K = 10,
        offset: Offset = 0,
        threshold: Annotated[float | None, Query(ge=-1, le=1, allow_inf_nan=False)] = None,
        min_confidence: Annotated[
            float | None,
            Query(
                ge=0,
                le=1,
                allow_inf_nan=False,
                description="No results when the query's confidence is below this.",
            ),
        ] = None,
        collapse_duplicates: bool = False,
        group: Annotated[
            bool, Query(description="One hit per video (false: every matching frame).")
        ] = True,
        expand: bool | None = None,
        generate: Annotated[
            bool | None,
            Query(description="Search by generated visual features; empty: search.generate."),
        ] = None,
        explain: bool = False,
        sort: Annotated[
            Literal["taken", "-taken"] | None,
            Query(description="Order by the date taken: taken (oldest first), -taken."),
        ] = None,
        ocr: Annotated[
            str | None,
            Query(max_length=MAX_OCR_CHARS, description="Words of the text inside the images."),
        ] = None,
    ) -> SearchReply:
        """Search by a description (q), a name, or an indexed image's id; or list the images
        that match the filters alone; ``ocr``: by the words of the text inside the images."""
        request = search_request(
            text=q,
            name=name,
            id=id,
            negatives=negatives,
            filters=filters,
            k=k,
            offset=offset,
            threshold=threshold,
            min_confidence=min_confidence,
            collapse_duplicates=collapse_duplicates,
            group=group,
            expand=expand,
            generate=generate,
            explain=explain,
            sort=sort,
            ocr=ocr,
        )
        return search_reply(server, request)


def add_search_by_upload(routes: APIRouter, limits: ApiSettings) -> None:
    """``POST /search/image``: an uploaded example image (multipart)."""

    @routes.post("/search/image")
    def search_image(
        server: Server,
        file: Annotated[UploadFile, File(description="The example image.")],
        k: Annotated[int, Form(ge=1, le=limits.max_k)] = 10,
        offset: Annotated[int, Form(ge=0, le=limits.max_offset)] = 0,
        threshold: Annotated[float | None, Form(ge=-1, le=1, allow_inf_nan=False)] = None,
        min_confidence: Annotated[float | None, Form(ge=0, le=1, allow_inf_nan=False)] = None,
        filters: Annotated[list[str], Form(alias="filter", max_length=32)] = [],  # noqa: B006
        explain: Annotated[bool, Form()] = False,
    ) -> SearchReply:
        """Search by an uploaded example image (multipart form, field ``file``)."""
        data = read_upload(file, limits.max_upload_bytes)
        request = search_request(
            image=image_text(data),
            k=k,
            offset=offset,
            threshold=threshold,
            min_confidence=min_confidence,
            filters=filters,
            explain=explain,
        )
        return search_reply(server, request)
