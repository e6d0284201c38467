"""The collection as a whole: ``GET /info``, ``GET /collections`` (clip-back style), tags
(``POST /tags`` runs a tagging, ``GET /tags`` counts) and ``POST /duplicates``."""

from __future__ import annotations

from fastapi import APIRouter

from search.api.dependencies import Client
from search.messages import (
    CollectionBody,
    DuplicateGroupBody,
    DuplicatesRequest,
    InfoBody,
    TagReportBody,
    TagRequest,
)

router = APIRouter(tags=["collection"])


@router.get("/info")
def info(client: Client) -> InfoBody:
    """What the collection holds: the object ``anyshot info --json`` prints (location,
    backend, model, points, size on disk, layout)."""
    return client.info()


@router.get("/collections", tags=["service"])
def collections(client: Client) -> list[CollectionBody]:
    """The collection this server searches: model, number of images, size on disk."""
    details = client.info().model_dump()
    return [CollectionBody(name=details.pop("collection"), **details)]


@router.post("/tags")
def tag(client: Client, body: TagRequest) -> TagReportBody:
    """Tag every image with its best labels (zero-shot), in the payload key ``tags``.

    One tagging run at a time, and none while an index run or a load writes (429).
    """
    report = client.tag(body.labels, top=body.top, min_score=body.min_score)
    return TagReportBody.model_validate(report.to_dict())


@router.get("/tags")
def tag_counts(client: Client) -> dict[str, int]:
    """Images per tag, most frequent first."""
    return client.tag_counts()


@router.post("/duplicates")
def duplicates(client: Client, body: DuplicatesRequest) -> list[DuplicateGroupBody]:
    """Groups of near-duplicate images (image↔image similarity at least ``threshold``)."""
    groups = client.duplicates(threshold=body.threshold)
    return [DuplicateGroupBody.model_validate(group.to_dict()) for group in groups]
