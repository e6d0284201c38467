"""The HTTP API (FastAPI): a thin shell over :class:`search.client.ImageSearch`.

``create_app(settings)`` builds the app; the client lives in its lifespan. The server owns the
store: an embedded store allows one process, so index runs for it come here (``POST /index``,
or ``anyshot index`` finding the store held by this server) and run in a background thread
while searches go on (see :mod:`search.index_jobs`).

Besides its own endpoints the API speaks LAION clip-retrieval's clip-back protocol
(``/indices-list``, ``/knn-service``, ``/metadata``), so that clip-front works against it.
"""

# No "from __future__ import annotations": FastAPI reads the handlers' annotations at run time,
# and some name types local to the route factories.

import base64
import binascii
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer.access import AccessPolicy
from indexer.config import Settings
from indexer.errors import (
    AnyshotError,
    BusyError,
    ConfigError,
    ImageDecodeError,
    ModelError,
    ModelMismatchError,
    ModelUnavailableError,
    QueryError,
    StoreLockedError,
    StoreNotFoundError,
)
from indexer.schema import POINT_ID_MAX, is_point_id, uri_path
from indexer.stores.edge import EdgeStore
from indexer.stores.holder import advertise_server, withdraw_server
from indexer.stores.location import StoreLocation
from indexer.stores.opening import open_store
from indexer.stores.serialized import SerializedStore
from search.client import ImageSearch
from search.engine import Hit
from search.example_images import DECODE_WAIT_SECONDS, ExampleImages, PixelBudget
from search.http_guards import ApiKeyGuard, BodyLimit, BodyTooLarge, SecurityHeaders
from search.index_jobs import IndexJobs
from search.query import QueryPart
from search.remote import API_KEY_HEADER
from search.served_images import NotServable, ServedImages
from search.thumbnails import ThumbnailCache, thumbnail_dir
from search.work_limits import WorkLimiter

logger = logging.getLogger(__name__)

DEFAULT_THUMBNAIL_SIZE = 256
CLIP_BACK_THUMBNAIL_SIZE = 256
OPEN_PATHS = ("/healthz", "/docs", "/redoc", "/openapi.json", "/static/")
"""Paths that need no API key: health, documentation and the built-in page's files."""

THUMBNAIL_WAIT_SECONDS = 30.0
"""How long a thumbnail waits for a decode slot before the request gets 429."""

ERROR_STATUS: list[tuple[type[AnyshotError], int]] = [
    (NotServable, 404),
    (StoreNotFoundError, 404),
    (ModelMismatchError, 409),
    (StoreLockedError, 409),
    (ModelUnavailableError, 503),
    (ModelError, 503),
    (QueryError, 400),
    (ImageDecodeError, 400),
    (ConfigError, 400),
    (BusyError, 429),
]
"""Status codes of anyshot's errors, most specific first; other errors (store failures) 503."""


# -- request and response bodies ----------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error reply: a type and one line saying what went wrong."""

    error: str = Field(description="What went wrong, in one line.")
    type: str = Field(description="The error's class, e.g. QueryError.")


class HitBody(BaseModel):
    """One search result."""

    id: int = Field(description="Point id (stable, below 2**53).")
    uri: str = Field(description="Where the image is.")
    score: float = Field(description="Cosine similarity to the query (higher is closer).")
    payload: dict[str, Any] = Field(description="Size, mtime, sha256, width, height, format, tags.")
    image_url: str = Field(description="The original image, served by this API.")
    thumbnail_url: str = Field(description="A cached JPEG thumbnail.")


class SearchReply(BaseModel):
    """Search results, best first."""

    hits: list[HitBody]
    explain: dict[str, Any] | None = Field(
        None, description="How the query was built (only when asked with explain=true)."
    )


class QueryPartBody(BaseModel):
    """One weighted part of a composite query; a negative weight pushes results away."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["text", "image", "name", "id"]
    value: str | int = Field(
        description="The text or name; for image, base64 image bytes; for id, an indexed id."
    )
    weight: float = Field(1.0, ge=-100, le=100, allow_inf_nan=False)


class SearchRequest(BaseModel):
    """A search: exactly one main query (text, name, image, image_url or id), or parts."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, max_length=10_000, description="A description.")
    name: str | None = Field(None, max_length=1_000, description="A name (prompt templates).")
    image: str | None = Field(
        None, description="An example image: base64-encoded file bytes, or a URL as image_url."
    )
    image_url: str | None = Field(
        None,
        max_length=4_000,
        description="An example image by URL: this API's /images/{id} URLs always work; others "
        "only where the server may fetch URLs (api.fetch_image_urls), and never from a "
        "private or loopback address unless api.fetch_allowed_hosts lists it.",
    )
    id: int | None = Field(None, ge=0, le=POINT_ID_MAX, description="An indexed image's id.")
    negatives: list[str] = Field(
        default_factory=list, max_length=32, description="Texts the results should not match."
    )
    parts: list[QueryPartBody] = Field(
        default_factory=list, max_length=32, description="Weighted query parts."
    )
    filters: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Payload filters: folder=/x, format=JPEG,PNG, tag=cat, mtime>=2024-01-01, "
        "size<2MB, id=5.",
    )
    k: int = Field(10, ge=1, description="How many results.")
    offset: int = Field(0, ge=0, description="Skip this many results.")
    threshold: float | None = Field(
        None, ge=-1, le=1, allow_inf_nan=False, description="Only results scoring at least this."
    )
    collapse_duplicates: bool = Field(False, description="Show one image of each duplicate group.")
    expand: bool | None = Field(
        None, description="Visual query expansion; empty: the server's default (search.expand)."
    )
    explain: bool = Field(False, description="Return how the query was built.")


class IndexRequest(BaseModel):
    """An index run inside the server."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=4_000,
        description="An absolute folder, list file or image path on the server.",
    )


class IndexJobBody(BaseModel):
    """An index run and how far it got."""

    id: str
    source: str
    state: Literal["queued", "running", "done", "failed"]
    done: int
    total: int
    report: dict[str, Any] | None
    error: str | None
    created: float
    finished: float | None


class CollectionBody(BaseModel):
    """What a collection holds."""

    name: str
    location: str
    backend: str
    model: dict[str, Any] | None
    points: int
    indexed_vectors: int | None
    disk_bytes: int | None


class KnnRequest(BaseModel):
    """clip-back's /knn-service request (clip-front sends it as text/plain JSON)."""

    model_config = ConfigDict(extra="ignore")

    text: str | None = Field(None, max_length=10_000)
    image: str | None = None
    image_url: str | None = Field(None, max_length=4_000)
    embedding_input: list[float] | None = Field(None, max_length=16_384)
    modality: str | None = "image"
    num_images: int = Field(40, ge=0)
    num_result_ids: int | None = Field(None, ge=0)
    indice_name: str | None = None
    deduplicate: bool | None = False
    use_safety_model: bool | None = False
    use_violence_detector: bool | None = False
    use_mclip: bool | None = False
    aesthetic_score: str | int | None = None
    aesthetic_weight: str | float | None = None


class MetadataRequest(BaseModel):
    """clip-back's /metadata request."""

    model_config = ConfigDict(extra="ignore")

    ids: list[int] = Field(max_length=100_000)
    indice_name: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422, 429, 503)
}


# -- the app --------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, *, advertise_url: str | None = None) -> FastAPI:
    """Build the HTTP API over one collection.

    Args:
        settings: All settings (``Settings()`` reads ``ANYSHOT_*``); ``settings.api`` holds the
            API's own (key, CORS, limits).
        advertise_url: The URL this server is reached at; with a folder store it is written to
            ``STORE/server.json`` so that ``anyshot index`` hands runs to this server.

    Returns:
        The FastAPI app; the store opens when it starts and closes when it stops.
    """
    settings = settings or Settings()
    api = settings.api
    downloads = WorkLimiter(
        api.max_concurrent_downloads, what="downloads", setting="api.max_concurrent_downloads"
    )
    decodes = WorkLimiter(
        api.max_concurrent_decodes,
        what="image decodes",
        setting="api.max_concurrent_decodes",
        wait=DECODE_WAIT_SECONDS,
    )
    thumbnail_decodes = WorkLimiter(
        api.max_concurrent_decodes,
        what="thumbnail decodes",
        setting="api.max_concurrent_decodes",
        wait=THUMBNAIL_WAIT_SECONDS,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = open_store(settings.store)
        if isinstance(opened, EdgeStore):
            opened.hold()  # an empty folder too: this server will index into it
        store = SerializedStore(opened)
        client = ImageSearch(settings, store=store)
        served = ServedImages(store, api, downloads)
        served.refresh()
        served.warn_if_unrecorded()
        jobs = IndexJobs(
            client,
            allowed_roots=api.index_roots,
            access=AccessPolicy.for_server(api, roots=api.index_roots),
            on_finished=served.refresh,  # a run records the roots it read: serve them now
        )
        folder = StoreLocation.parse(settings.store.location).folder
        advertised = advertise_url is not None and folder is not None
        app.state.client = client
        app.state.jobs = jobs
        app.state.served = served
        app.state.examples = ExampleImages(api, downloads=downloads, decodes=decodes)
        app.state.thumbnails = ThumbnailCache(
            thumbnail_dir(settings), served, decodes=thumbnail_decodes
        )
        try:
            if advertised:
                assert advertise_url is not None and folder is not None
                advertise_server(folder, advertise_url)
            yield
        finally:
            if advertised:
                withdraw_server(folder)
            jobs.close()
            store.close()

    app = FastAPI(
        title="anyshot",
        summary="Search images by example, by name and by description.",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        docs_url=None,  # served by add_docs, from installed files: no CDN
        redoc_url=None,
    )
    app.state.settings = settings
    add_error_handlers(app)
    add_guards(app, settings)
    add_search_routes(app, settings)
    add_image_routes(app, settings)
    add_index_routes(app)
    add_clip_back_routes(app, settings)
    add_page(app)
    add_docs(app)
    return app


def client_of(request: Request) -> ImageSearch:
    """The app's client (opened in the lifespan)."""
    return request.app.state.client


def error_reply(status: int, message: str, kind: str) -> JSONResponse:
    """An error as JSON: ``{"error": message, "type": kind}``."""
    return JSONResponse({"error": message, "type": kind}, status_code=status)


def status_of(exc: AnyshotError) -> int:
    """The HTTP status of one of anyshot's errors."""
    return next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 503)


def add_error_handlers(app: FastAPI) -> None:
    """Map errors to JSON replies: ours by class, bad input 4xx, anything else 500."""

    @app.exception_handler(AnyshotError)
    async def anyshot_error(_: Request, exc: AnyshotError) -> JSONResponse:
        if isinstance(exc, NotServable) and exc.worth_logging:
            # The client learns only that; the log says why (a crafted point, a gone file).
            logger.warning("not serving %s: %s", exc.uri, exc.reason)
        reply = error_reply(status_of(exc), str(exc), type(exc).__name__)
        if isinstance(exc, BusyError):
            reply.headers["Retry-After"] = "1"
        return reply

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_reply(422, describe_validation(exc.errors()), "ValidationError")

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        # The rest of the body is never read: the connection closes after this reply.
        reply = error_reply(413, str(exc.detail), "TooLarge")
        reply.headers["Connection"] = "close"
        return reply

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_reply(exc.status_code, str(exc.detail), "HTTPError")

    @app.exception_handler(RecursionError)
    async def too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        return error_reply(400, "the request is nested too deeply", "QueryError")

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error", exc_info=exc)
        return error_reply(500, "internal error (see the server log)", "InternalError")


def describe_validation(errors: Any) -> str:
    """One line from pydantic's validation errors."""
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "invalid request: " + "; ".join(parts)


def add_guards(app: FastAPI, settings: Settings) -> None:
    """API key, request size limit, security headers and CORS (outermost, so that errors carry
    CORS headers)."""
    # Added last is outermost: CORS, then headers, then the key check, then the body limit.
    app.add_middleware(BodyLimit, limit=settings.api.max_upload_bytes)
    if settings.api.api_key is not None:
        app.add_middleware(
            ApiKeyGuard,
            key=settings.api.api_key.get_secret_value(),
            header=API_KEY_HEADER,
            open_paths=OPEN_PATHS,
        )
    app.add_middleware(SecurityHeaders)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
        )


# -- searching ------------------------------------------------------------------------------------


def hit_body(hit: Hit) -> dict[str, Any]:
    """A hit as the API returns it, with links to the image and its thumbnail."""
    return hit.to_dict() | {"image_url": f"/images/{hit.id}", "thumbnail_url": f"/thumbs/{hit.id}"}


def decode_base64_image(data: str, limit: int) -> bytes:
    """The bytes of a base64 image (a ``data:`` URL prefix is allowed).

    Raises:
        QueryError: Not base64, empty, or too large.
    """
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise QueryError(f"the image is not valid base64: {exc}") from exc
    if not raw:
        raise QueryError("the image is empty")
    if len(raw) > limit:
        raise QueryError(f"the image is larger than {limit} bytes")
    return raw


OWN_IMAGE_URL = re.compile(r"/(?:images|thumbs)/(\d{1,19})(?:[?#].*)?$")


def example_image(
    request: Request, data: bytes, budget: PixelBudget, label: str = "the example image"
) -> Image.Image:
    """Decode a client's example image within the request's pixel budget (see
    :mod:`search.example_images`), reduced to the model's input size where the format allows."""
    target_size = client_of(request).engine.embedder.image_size  # 404 on an empty store first
    return request.app.state.examples.decode(
        data, target_size=target_size, budget=budget, label=label
    )


def image_url_query(url: str, request: Request, budget: PixelBudget) -> dict[str, Any]:
    """The query for an example image given by URL.

    This API's own ``/images/{id}`` and ``/thumbs/{id}`` URLs become "more like this" by id
    (clip-front's search by a result's image sends its URL back); other http(s) URLs are
    downloaded only when ``api.fetch_image_urls`` allows it, under the server's policy, and the
    engine gets the decoded image, never the URL. Nothing else is accepted: a path here would
    let a client read the server's files.

    Raises:
        QueryError: A URL that may not be used, or whose image cannot be.
        BusyError: Too many downloads or decodes at once.
    """
    own = OWN_IMAGE_URL.search(url)
    if own is not None and is_point_id(int(own.group(1))):
        return {"similar_to": int(own.group(1))}
    if not url.lower().startswith(("http://", "https://")):
        raise QueryError("image_url must be an http(s) URL")
    data = request.app.state.examples.download(url)
    return {"image": example_image(request, data, budget, label=f"the image at {url}")}


def run_search(
    client: ImageSearch,
    *,
    query: dict[str, Any],
    negatives: Sequence[str] = (),
    parts: Sequence[QueryPart] = (),
    filters: Sequence[str] = (),
    k: int = 10,
    offset: int = 0,
    threshold: float | None = None,
    collapse_duplicates: bool = False,
    expand: bool | None = None,
    explain: bool = False,
) -> tuple[list[Hit], dict[str, Any] | None]:
    """Run one query through the client.

    Args:
        client: The client.
        query: The main query: any of ``text``, ``image`` (a decoded example), ``name``,
            ``similar_to``.
        negatives: Texts to move away from.
        parts: More weighted parts.
        filters: Filter expressions (:func:`search.filters.parse_filters`).
        k, offset, threshold, collapse_duplicates, expand: As :meth:`ImageSearch.query`.
        explain: Return the explanation too.

    Returns:
        The hits, and the explanation when ``explain`` is set.
    """
    result = client.query(
        query.get("text"),
        image=query.get("image"),
        name=query.get("name"),
        similar_to=query.get("similar_to"),
        negatives=tuple(negatives),
        parts=tuple(parts),
        where=list(filters) or None,
        k=k,
        offset=offset,
        threshold=threshold,
        collapse_duplicates=collapse_duplicates,
        expand=expand,
    )
    return list(result.hits), (dict(result.explain) if explain else None)


def query_parts(
    request: Request, parts: list[QueryPartBody], budget: PixelBudget
) -> list[QueryPart]:
    """Turn request parts into the client's query parts (base64 images decoded, in budget)."""
    limit = request.app.state.settings.api.max_upload_bytes
    converted = []
    for part in parts:
        value: Any = part.value
        if part.kind == "image":
            value = example_image(request, decode_base64_image(str(value), limit), budget)
        elif part.kind == "id":
            try:
                value = int(value)
            except ValueError as exc:
                raise QueryError(f"an id part needs an integer, not {value!r}") from exc
        else:
            value = str(value)
        converted.append(QueryPart(part.kind, value, part.weight))
    return converted


def add_search_routes(app: FastAPI, settings: Settings) -> None:
    """/search (GET and POST), /search/image, /collections, /healthz."""
    limits = settings.api
    K = Annotated[int, Query(ge=1, le=limits.max_k, description="How many results.")]
    Offset = Annotated[
        int, Query(ge=0, le=limits.max_offset, description="Skip this many results.")
    ]

    def check_window(k: int, offset: int) -> None:
        if k > limits.max_k:
            raise QueryError(f"k must be at most {limits.max_k}")
        if offset > limits.max_offset:
            raise QueryError(f"offset must be at most {limits.max_offset}")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """Liveness: the server answers (no API key needed).

        Runs on the event loop, needing no worker thread: it answers while every thread is
        busy with slow work.
        """
        return {"status": "ok"}

    @app.get("/collections", tags=["service"])
    def collections(request: Request) -> list[CollectionBody]:
        """The collection this server searches: model, number of images, size on disk."""
        details = client_of(request).info()
        return [
            CollectionBody(
                name=settings.store.collection,
                location=details.location,
                backend=details.backend,
                model=details.model.to_dict() if details.model else None,
                points=details.points,
                indexed_vectors=details.indexed_vectors,
                disk_bytes=details.disk_bytes,
            )
        ]

    @app.get("/search", tags=["search"])
    def search_get(
        request: Request,
        q: Annotated[str | None, Query(max_length=10_000, description="A description.")] = None,
        name: Annotated[str | None, Query(max_length=1_000, description="A name.")] = None,
        id: Annotated[
            int | None, Query(ge=0, le=POINT_ID_MAX, description="More like this indexed image.")
        ] = None,
        negatives: Annotated[
            list[str], Query(alias="not", max_length=32, description="Texts to avoid.")
        ] = [],  # noqa: B006 - FastAPI copies defaults
        filters: Annotated[
            list[str], Query(alias="filter", max_length=32, description="Payload filters.")
        ] = [],  # noqa: B006
        k: K = 10,
        offset: Offset = 0,
        threshold: Annotated[float | None, Query(ge=-1, le=1, allow_inf_nan=False)] = None,
        collapse_duplicates: bool = False,
        expand: bool | None = None,
        explain: bool = False,
    ) -> SearchReply:
        """Search by a description (q), a name, or an indexed image's id."""
        main = {
            key: value
            for key, value in {"text": q, "name": name, "similar_to": id}.items()
            if value is not None
        }
        hits, explanation = run_search(
            client_of(request),
            query=main,
            negatives=negatives,
            filters=filters,
            k=k,
            offset=offset,
            threshold=threshold,
            collapse_duplicates=collapse_duplicates,
            expand=expand,
            explain=explain,
        )
        return SearchReply.model_validate(
            {"hits": [hit_body(h) for h in hits], "explain": explanation}
        )

    @app.post("/search", tags=["search"])
    def search_post(request: Request, body: SearchRequest) -> SearchReply:
        """Search by text, name, a base64 image, an image URL, an indexed id or weighted parts."""
        check_window(body.k, body.offset)
        main: dict[str, Any] = {}
        if body.text is not None:
            main["text"] = body.text
        if body.name is not None:
            main["name"] = body.name
        if body.id is not None:
            main["similar_to"] = body.id
        budget = request.app.state.examples.budget()
        if body.image is not None and body.image.lower().startswith(("http://", "https://")):
            main |= image_url_query(body.image, request, budget)
        elif body.image is not None:
            data = decode_base64_image(body.image, limits.max_upload_bytes)
            main["image"] = example_image(request, data, budget)
        if body.image_url is not None:
            main |= image_url_query(body.image_url, request, budget)
        hits, explanation = run_search(
            client_of(request),
            query=main,
            negatives=body.negatives,
            parts=query_parts(request, body.parts, budget),
            filters=body.filters,
            k=body.k,
            offset=body.offset,
            threshold=body.threshold,
            collapse_duplicates=body.collapse_duplicates,
            expand=body.expand,
            explain=body.explain,
        )
        return SearchReply.model_validate(
            {"hits": [hit_body(h) for h in hits], "explain": explanation}
        )

    @app.post("/search/image", tags=["search"])
    def search_image(
        request: Request,
        file: Annotated[UploadFile, File(description="The example image.")],
        k: Annotated[int, Form(ge=1, le=limits.max_k)] = 10,
        offset: Annotated[int, Form(ge=0, le=limits.max_offset)] = 0,
        threshold: Annotated[float | None, Form(ge=-1, le=1, allow_inf_nan=False)] = None,
        filters: Annotated[list[str], Form(alias="filter", max_length=32)] = [],  # noqa: B006
    ) -> SearchReply:
        """Search by an uploaded example image (multipart form, field ``file``)."""
        data = file.file.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise QueryError(f"the image is larger than {limits.max_upload_bytes} bytes")
        if not data:
            raise QueryError("the uploaded image is empty")
        image = example_image(request, data, request.app.state.examples.budget())
        hits, _ = run_search(
            client_of(request),
            query={"image": image},
            filters=filters,
            k=k,
            offset=offset,
            threshold=threshold,
        )
        return SearchReply.model_validate({"hits": [hit_body(h) for h in hits]})


# -- images ---------------------------------------------------------------------------------------


def indexed_payload(client: ImageSearch, point_id: int) -> dict[str, Any]:
    """The payload of an indexed image.

    Raises:
        StoreNotFoundError: No image with that id (404).
    """
    found = client.store.retrieve([point_id])
    if not found:
        raise StoreNotFoundError(f"no image with id {point_id} in the collection")
    return found[0].payload


def add_image_routes(app: FastAPI, settings: Settings) -> None:
    """/images/{id} (the original) and /thumbs/{id} (cached JPEG thumbnails).

    Only images under the store's trusted roots are served (:mod:`search.served_images`);
    every other indexed image answers 404.
    """
    PointId = Annotated[int, PathParam(ge=0, le=POINT_ID_MAX, description="An indexed id.")]

    @app.get(
        "/images/{point_id}",
        tags=["images"],
        response_class=Response,
        responses={200: {"content": {"image/*": {}}}, 307: {"description": "A web image."}},
    )
    def image(request: Request, point_id: PointId) -> Response:
        """The original image file, with the content type of its format. Only indexed images
        under the collection's trusted folders (or web origins) are served, by id: no paths."""
        uri = str(indexed_payload(client_of(request), point_id).get("uri", ""))
        served: ServedImages = request.app.state.served
        if uri_path(uri) is None:
            url = served.web_url(uri)
            if url is None:
                raise NotServable(uri, "a URL of an origin the collection does not trust")
            return RedirectResponse(url, status_code=307)
        # The checked file is the served file: it stays open until its last byte is sent.
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

    @app.get(
        "/thumbs/{point_id}",
        tags=["images"],
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumbnail(
        request: Request,
        point_id: PointId,
        size: Annotated[
            int, Query(ge=16, le=settings.api.max_thumbnail_size, description="Longest edge, px.")
        ] = DEFAULT_THUMBNAIL_SIZE,
    ) -> Response:
        """A JPEG thumbnail of an indexed image, made once and cached."""
        payload = indexed_payload(client_of(request), point_id)
        data = request.app.state.thumbnails.thumbnail(
            point_id, str(payload.get("uri", "")), str(payload.get("sha256", "")), size
        )
        return Response(
            data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"}
        )


# -- index runs -----------------------------------------------------------------------------------


def add_index_routes(app: FastAPI) -> None:
    """POST /index starts a run in the server; GET /index/{id} follows it."""

    @app.post("/index", status_code=202, tags=["index"])
    def start_index(request: Request, body: IndexRequest) -> IndexJobBody:
        """Index a folder, list file or image on the server, in the background.

        Searches keep answering while it runs. Runs queue up: one at a time.
        """
        job = request.app.state.jobs.submit(body.source)
        return IndexJobBody.model_validate(job.to_dict())

    @app.get("/index", tags=["index"])
    async def list_index_jobs(request: Request) -> list[IndexJobBody]:
        """Recent index runs, oldest first."""
        return [IndexJobBody.model_validate(j.to_dict()) for j in request.app.state.jobs.jobs()]

    @app.get("/index/{job_id}", tags=["index"])
    async def index_job(
        request: Request, job_id: Annotated[str, PathParam(max_length=64)]
    ) -> IndexJobBody:
        """One index run: state, progress, and its report once done."""
        job = request.app.state.jobs.get(job_id)
        if job is None:
            raise StarletteHTTPException(404, f"no index job {job_id}")
        return IndexJobBody.model_validate(job.to_dict())


# -- clip-back protocol ---------------------------------------------------------------------------

CLIP_BACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": KnnRequest.model_json_schema()}},
        "description": "JSON; clip-front sends it as text/plain, which is accepted too.",
    }
}
METADATA_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": MetadataRequest.model_json_schema()}},
    }
}


async def json_body(request: Request, model: type[BaseModel]) -> Any:
    """Parse a JSON body whatever its content type (clip-front posts text/plain).

    Raises:
        QueryError: Not JSON, or nested too deeply to parse (400, never a 500).
        RequestValidationError: JSON that is not what ``model`` needs (422).
    """
    raw = await request.body()
    try:
        return model.model_validate(json.loads(raw))
    except RecursionError as exc:
        raise QueryError("the body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ValidationError):
            raise RequestValidationError(exc.errors()) from exc
        raise QueryError(f"the body is not JSON: {exc}") from exc


def add_clip_back_routes(app: FastAPI, settings: Settings) -> None:
    """LAION clip-retrieval's clip-back protocol, for clip-front."""
    name = settings.store.collection
    limits = settings.api

    def check_index(indice_name: str | None) -> None:
        if indice_name not in (None, "", name):
            raise StoreNotFoundError(f"no index {indice_name!r}; this server has {name!r}")

    def entries(request: Request, points: Sequence[tuple[int, dict[str, Any]]]) -> list[dict]:
        """Metadata of results; only the first ``api.max_thumbnails_per_request`` carry a
        thumbnail (``image``), so that one request cannot make the server build a thousand."""
        base = str(request.base_url).rstrip("/")
        thumbnails: ThumbnailCache = request.app.state.thumbnails
        built = []
        for rank, (hit_id, payload) in enumerate(points):
            uri = str(payload.get("uri", ""))
            meta: dict[str, Any] = {
                "url": f"{base}/images/{hit_id}",
                "caption": Path(uri).name or uri,
                "image_path": uri,
            }
            if rank < limits.max_thumbnails_per_request:
                try:
                    jpeg = thumbnails.thumbnail(
                        hit_id, uri, str(payload.get("sha256", "")), CLIP_BACK_THUMBNAIL_SIZE
                    )
                except NotServable as exc:  # gone, or not under a trusted root: no image
                    if exc.worth_logging:
                        logger.warning("no thumbnail of %s: %s", exc.uri, exc.reason)
                except BusyError:
                    pass  # the client shows the URL instead
                else:
                    meta["image"] = base64.b64encode(jpeg).decode()
            built.append(meta)
        return built

    @app.get("/indices-list", tags=["clip-back"])
    async def indices_list() -> list[str]:
        """clip-back: the names of the indices (one: the collection)."""
        return [name]

    @app.post("/knn-service", tags=["clip-back"], openapi_extra=CLIP_BACK_BODY)
    async def knn_service(request: Request) -> list[dict[str, Any]]:
        """clip-back: nearest images to a text, a base64 image, an image URL or an embedding.

        The first ``num_images`` results carry metadata (url, caption, image_path, and for the
        first ``api.max_thumbnails_per_request`` of them image, a base64 JPEG thumbnail); the
        rest up to ``num_result_ids`` only id and similarity, for /metadata later. Safety,
        violence, aesthetic and mclip options are accepted and ignored.
        """
        body: KnnRequest = await json_body(request, KnnRequest)
        check_index(body.indice_name)
        count = min(max(body.num_result_ids or body.num_images, body.num_images), limits.max_k)
        with_metadata = min(body.num_images, count)
        if count == 0:
            return []
        hits = await run_in_threadpool(knn_hits, request, body, count)
        metas = await run_in_threadpool(
            entries, request, [(hit.id, hit.payload) for hit in hits[:with_metadata]]
        )
        reply = []
        for rank, hit in enumerate(hits):
            item: dict[str, Any] = {"id": hit.id, "similarity": hit.score}
            if rank < with_metadata:
                item |= metas[rank]
            reply.append(item)
        return reply

    @app.post("/metadata", tags=["clip-back"], openapi_extra=METADATA_BODY)
    async def metadata(request: Request) -> list[dict[str, Any]]:
        """clip-back: metadata (url, caption, image_path, image) of result ids; only the first
        ``api.max_thumbnails_per_request`` carry a thumbnail."""
        body: MetadataRequest = await json_body(request, MetadataRequest)
        check_index(body.indice_name)
        if len(body.ids) > limits.max_k:
            raise QueryError(f"at most {limits.max_k} ids per request")
        client = client_of(request)
        found = await run_in_threadpool(
            client.store.retrieve, [i for i in body.ids if is_point_id(i)]
        )
        metas = await run_in_threadpool(entries, request, [(p.id, p.payload) for p in found])
        return [{"id": p.id, "metadata": meta} for p, meta in zip(found, metas, strict=True)]


def knn_hits(request: Request, body: KnnRequest, count: int) -> list[Hit]:
    """The hits of a clip-back query."""
    client = client_of(request)
    options: dict[str, Any] = {"k": count}
    if body.deduplicate:
        options["collapse_duplicates"] = True
    if body.text:
        return run_search(client, query={"text": body.text}, **options)[0]
    budget = request.app.state.examples.budget()
    if body.image:
        data = decode_base64_image(body.image, request.app.state.settings.api.max_upload_bytes)
        query = {"image": example_image(request, data, budget)}
        return run_search(client, query=query, **options)[0]
    if body.image_url:
        query = image_url_query(body.image_url, request, budget)
        return run_search(client, query=query, **options)[0]
    if body.embedding_input is not None:
        vector = np.asarray(body.embedding_input, dtype=np.float32)
        dim = client.store.require_model().dim
        norm = float(np.linalg.norm(vector)) if np.isfinite(vector).all() else 0.0
        if vector.shape != (dim,) or norm == 0.0:
            raise QueryError(f"embedding_input must be {dim} finite numbers, not all zero")
        return client.engine.search_vector(vector / norm, k=count)
    raise QueryError("give one of text, image, image_url or embedding_input")


# -- the built-in page ----------------------------------------------------------------------------


def add_page(app: FastAPI) -> None:
    """The search page at / and its files under /static."""
    web = resources.files("search") / "web"
    with resources.as_file(web) as folder:
        app.mount("/static", StaticFiles(directory=folder), name="static")
        page = (Path(folder) / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page() -> HTMLResponse:
        return HTMLResponse(page)


def add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, with their files under /docs-assets.

    The files come from the installed ``fastapi-offline`` package, not a CDN, so the docs work
    offline; the pages run no inline script (:data:`search.http_guards.DOCS_POLICY`).
    """
    assets = resources.files("fastapi_offline") / "static"
    with resources.as_file(assets) as folder:
        app.mount("/docs-assets", StaticFiles(directory=folder), name="docs-assets")
    web = resources.files("search") / "web"
    pages = {name: (web / f"{name}.html").read_text() for name in ("docs", "redoc")}

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(pages["docs"])

    @app.get("/redoc", response_class=HTMLResponse, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(pages["redoc"])


__all__ = ["create_app"]
