"""Snapshots through the server, one part per request; no server path is ever a parameter.

- ``GET /export/points?after=ID&limit=N``: the points with ids above ``after`` as the bytes of
  one Parquet shard (headers: its checksum, its number of points, the collection's, and the
  next page's ``after`` unless it is the last); 204 when no point follows ``after``.
- ``GET /export/documents``: what the snapshot's ``documents.json`` holds (concepts; never the
  trusted roots).
- ``POST /load?trust=...``: one Parquet shard as the body (under the upload limit), checked as
  a snapshot's shard is; ``trust`` folders only under ``api.index_roots`` when set, as for
  ``POST /index``. Replies with the load report of that shard.
- ``POST /load/documents``: a snapshot's documents, their concepts checked as on a load.

See :mod:`search.snapshot_parts`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from indexer.schema import POINT_ID_MAX
from search.api.dependencies import Client, Server
from search.messages import (
    NEXT_AFTER_HEADER,
    PARQUET_MEDIA_TYPE,
    SHARD_CHECKSUM_HEADER,
    SHARD_POINTS_HEADER,
    TOTAL_POINTS_HEADER,
    UPLOADED_SHARD,
    LoadReportBody,
    SnapshotDocumentsBody,
)
from search.serving.server_paths import check_server_path

DEFAULT_PAGE_POINTS = 4096
MAX_PAGE_POINTS = 10_000
MAX_TRUST_ENTRIES = 32
EXPOSED_HEADERS = (
    NEXT_AFTER_HEADER,
    SHARD_CHECKSUM_HEADER,
    SHARD_POINTS_HEADER,
    TOTAL_POINTS_HEADER,
)
"""Headers of an export page a browser's script may read (CORS)."""

PARQUET_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {PARQUET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "One Parquet shard of an anyshot snapshot (part-*.parquet), at most "
        "api.max_upload_bytes; the report calls it " + UPLOADED_SHARD + ".",
    }
}
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {PARQUET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "One Parquet shard; the next page's after in " + NEXT_AFTER_HEADER + ".",
    },
    204: {"description": "No point has an id above after."},
}


router = APIRouter(tags=["snapshots"])


@router.get("/export/points", response_class=Response, responses=PAGE_RESPONSES)
def export_points(
    client: Client,
    after: Annotated[
        int | None, Query(ge=0, le=POINT_ID_MAX, description="The previous page's last id.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE_POINTS, description="The most points in the page.")
    ] = DEFAULT_PAGE_POINTS,
) -> Response:
    """One page of the collection, in id order, as a Parquet shard (vectors, payloads, tags
    and their scores)."""
    page = client.export_page(after=after, limit=limit)
    headers = {TOTAL_POINTS_HEADER: str(page.total), SHARD_POINTS_HEADER: str(page.points)}
    if page.data is None:
        return Response(status_code=204, headers=headers)
    if page.checksum is not None:
        headers[SHARD_CHECKSUM_HEADER] = page.checksum
    if page.next_after is not None:
        headers[NEXT_AFTER_HEADER] = str(page.next_after)
    return Response(page.data, media_type=PARQUET_MEDIA_TYPE, headers=headers)


@router.get("/export/documents")
def export_documents(client: Client) -> SnapshotDocumentsBody:
    """The documents a snapshot carries (the concepts); never the trusted roots."""
    return SnapshotDocumentsBody.model_validate(client.export_documents())


@router.post("/load", openapi_extra=PARQUET_BODY)
async def load_shard(
    request: Request,
    server: Server,
    trust: Annotated[
        list[str],
        Query(
            max_length=MAX_TRUST_ENTRIES,
            description="A folder of this server (under api.index_roots when set) or an "
            "http(s) origin (only without api.index_roots) to serve the loaded images from.",
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults
) -> LoadReportBody:
    """Load one shard: every row checked (uri, id, vector, payload), the good ones upserted.

    A bad shard or rejected rows are in the report, as ``anyshot load`` reports them.
    """
    trusted = [
        check_server_path(entry, server.index_roots, what="folder to trust") for entry in trust
    ]
    data = await request.body()  # counted against the upload limit as it arrives
    report = await run_in_threadpool(server.client.load_shard, data, trust=trusted)
    if trusted:
        await run_in_threadpool(server.served.refresh)
    return LoadReportBody.model_validate(report.to_dict())


@router.post("/load/documents")
def load_documents(client: Client, body: SnapshotDocumentsBody) -> LoadReportBody:
    """Add a snapshot's concepts (load its shards first: the collection needs its model)."""
    report = client.load_documents(body.model_dump())
    return LoadReportBody.model_validate(report.to_dict())
