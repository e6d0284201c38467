"""LAION clip-retrieval's clip-back protocol (``/indices-list``, ``/knn-service``,
``/metadata``), so that clip-front works against this server.

Its bodies are clip-back's, not anyshot's (:mod:`search.messages`): clip-front posts them as
``text/plain`` JSON, so they are parsed here whatever the content type. A query becomes the one
:class:`~search.messages.SearchRequest` (or, for ``embedding_input``, a search by vector).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from indexer.config import Settings
from indexer.errors import BusyError, QueryError, StoreNotFoundError
from search.api.dependencies import Server
from search.api.routers.search import answer, search_request
from search.messages import MAX_TEXT_CHARS
from search.results import Hit
from search.serving.served_images import NotServable
from search.serving.state import ServerState

logger = logging.getLogger(__name__)

CLIP_BACK_THUMBNAIL_SIZE = 256


class KnnRequest(BaseModel):
    """clip-back's /knn-service request (clip-front sends it as text/plain JSON)."""

    model_config = ConfigDict(extra="ignore")

    text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
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


def knn_hits(server: ServerState, body: KnnRequest, count: int) -> list[Hit]:
    """The hits of a clip-back query: a text, a base64 image, an image URL or an embedding."""
    options: dict[str, Any] = {"k": count, "collapse_duplicates": bool(body.deduplicate)}
    if body.text:
        return answer(server, search_request(text=body.text, **options))
    if body.image:
        return answer(server, search_request(image=body.image, **options))
    if body.image_url:
        return answer(server, search_request(image_url=body.image_url, **options))
    if body.embedding_input is not None:
        return server.client.search_vector(body.embedding_input, k=count)
    raise QueryError("give one of text, image, image_url or embedding_input")


def entries(
    request: Request, server: ServerState, points: Sequence[tuple[int, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Metadata of results; only the first ``api.max_thumbnails_per_request`` carry a
    thumbnail (``image``), so that one request cannot make the server build a thousand.

    A video's frame has the frame as its thumbnail, the video from the moment as its ``url``
    (``/videos/{id}#t=SECONDS``), its time as ``t`` and ``image_path#t=SECONDS``."""
    base = str(request.base_url).rstrip("/")
    built = []
    for rank, (hit_id, payload) in enumerate(points):
        uri = str(payload.get("uri", ""))
        t = payload.get("t") if payload.get("kind") == "video" else None
        meta: dict[str, Any] = {
            "url": f"{base}/images/{hit_id}",
            "caption": Path(uri).name or uri,
            "image_path": uri,
        }
        if isinstance(t, int | float):
            meta["url"] = f"{base}/videos/{hit_id}#t={t:g}"
            meta["caption"] = f"{meta['caption']} @ {t:g} s"
            meta["t"] = float(t)
        else:
            t = None
        if rank < server.settings.api.max_thumbnails_per_request:
            jpeg = thumbnail(server, hit_id, uri, str(payload.get("sha256", "")), t)
            if jpeg is not None:
                meta["image"] = base64.b64encode(jpeg).decode()
        built.append(meta)
    return built


def thumbnail(
    server: ServerState, point_id: int, uri: str, sha256: str, t: float | None = None
) -> bytes | None:
    """A result's thumbnail (a video frame's: the frame at ``t``), or None when it may not be
    served or the server is busy (the client shows the URL instead)."""
    try:
        return server.thumbnails.thumbnail(
            point_id, uri, sha256, CLIP_BACK_THUMBNAIL_SIZE, t=float(t) if t is not None else None
        )
    except NotServable as exc:  # gone, or not under a trusted root: no image
        if exc.worth_logging:
            logger.warning("no thumbnail of %s: %s", exc.uri, exc.reason)
    except BusyError:
        pass
    return None


def router(settings: Settings) -> APIRouter:
    """The clip-back operations."""
    name = settings.store.collection
    limits = settings.api
    routes = APIRouter(tags=["clip-back"])

    def check_index(indice_name: str | None) -> None:
        if indice_name not in (None, "", name):
            raise StoreNotFoundError(f"no index {indice_name!r}; this server has {name!r}")

    @routes.get("/indices-list")
    async def indices_list() -> list[str]:
        """clip-back: the names of the indices (one: the collection)."""
        return [name]

    @routes.post("/knn-service", openapi_extra=CLIP_BACK_BODY)
    async def knn_service(request: Request, server: Server) -> list[dict[str, Any]]:
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
        hits = await run_in_threadpool(knn_hits, server, body, count)
        shown = [(hit.id, hit.payload) for hit in hits[:with_metadata]]
        metas = await run_in_threadpool(entries, request, server, shown)
        reply = []
        for rank, hit in enumerate(hits):
            item: dict[str, Any] = {"id": hit.id, "similarity": hit.score}
            if rank < with_metadata:
                item |= metas[rank]
            reply.append(item)
        return reply

    @routes.post("/metadata", openapi_extra=METADATA_BODY)
    async def metadata(request: Request, server: Server) -> list[dict[str, Any]]:
        """clip-back: metadata (url, caption, image_path, image) of result ids; only the first
        ``api.max_thumbnails_per_request`` carry a thumbnail."""
        body: MetadataRequest = await json_body(request, MetadataRequest)
        check_index(body.indice_name)
        if len(body.ids) > limits.max_k:
            raise QueryError(f"at most {limits.max_k} ids per request")
        found = await run_in_threadpool(server.client.payloads, body.ids)
        metas = await run_in_threadpool(entries, request, server, list(found.items()))
        return [{"id": point, "metadata": meta} for point, meta in zip(found, metas, strict=True)]

    return routes
