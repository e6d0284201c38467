"""What crosses HTTP, defined once: the bodies of every request and reply of the API.

The HTTP API validates requests and documents replies with these models, the remote Python
client (``anyshot serve`` over HTTP) builds the same requests and reads the same replies, and
the CLI builds its searches as a :class:`SearchRequest` whether it runs the collection itself or
hands the search to a server. Images travel as base64 in JSON.

Errors travel as :class:`ErrorBody` (``{"error": "...", "type": "QueryError"}``);
:func:`error_from_reply` turns one back into the anyshot error of that name, so a remote client
raises what a local one would.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from indexer import errors
from indexer.schema import POINT_ID_MAX

API_KEY_HEADER = "X-API-Key"
"""The header that carries the API key."""

SERVICE_NAME = "anyshot"
"""What ``GET /healthz`` says in ``service``: tells an anyshot server from a Qdrant server."""

MAX_QUERY_PARTS = 32
MAX_TEXT_CHARS = 10_000
MAX_NAME_CHARS = 1_000
"""The longest concept name or tag label a request may carry (a snapshot's limit too)."""
MAX_OCR_CHARS = 4_000
"""The longest ``ocr`` text a request may carry (its words are limited further)."""

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
"""The content type of one Parquet shard: ``GET /export/points`` answers one, ``POST /load``
takes one."""
NEXT_AFTER_HEADER = "X-Anyshot-Next-After"
"""``GET /export/points``: the ``after`` of the next page; absent on the last page."""
SHARD_CHECKSUM_HEADER = "X-Anyshot-Shard-Checksum"
"""``GET /export/points``: the checksum the shard carries (``sha256:...`` over its values)."""
SHARD_POINTS_HEADER = "X-Anyshot-Points"
"""``GET /export/points``: how many points the shard holds."""
TOTAL_POINTS_HEADER = "X-Anyshot-Total"
"""``GET /export/points``: how many points the collection holds (for progress)."""
UPLOADED_SHARD = "<uploaded shard>"
"""What ``POST /load``'s report calls the shard it was sent (the server's file name of it is
no business of the client's)."""


# -- errors ---------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error reply: a type and one line saying what went wrong."""

    error: str = Field(description="What went wrong, in one line.")
    type: str = Field(description="The error's class, e.g. QueryError.")


_WIRE_ONLY_TYPES: dict[str, type[errors.AnyshotError]] = {
    "Unauthorized": errors.ConfigError,  # a missing or wrong API key: a setting of the caller
    "TooLarge": errors.QueryError,
    "ValidationError": errors.QueryError,
    "NotServable": errors.StoreNotFoundError,
}


def error_class(name: str) -> type[errors.AnyshotError]:
    """The anyshot error class a reply's ``type`` names (the root class for unknown names)."""
    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, errors.AnyshotError):
        return found
    return _WIRE_ONLY_TYPES.get(name, errors.AnyshotError)


def error_from_reply(body: ErrorBody) -> errors.AnyshotError:
    """Rebuild the error a server raised: same class (when anyshot has it), same message.

    Classes whose constructor takes more than a message (``ImageDecodeError(path, reason)``,
    ...) are built without calling it, so that ``str(error)`` is the server's line exactly.
    """
    kind = error_class(body.type)
    error = kind.__new__(kind)
    Exception.__init__(error, body.error)
    return error


# -- images ---------------------------------------------------------------------------------------


def image_text(data: bytes) -> str:
    """Image bytes as the base64 text a request carries."""
    return base64.b64encode(data).decode("ascii")


def image_bytes(text: str, limit: int) -> bytes:
    """The bytes of a base64 image from a request (a ``data:`` URL prefix is allowed).

    Raises:
        QueryError: Not base64, empty, or larger than ``limit`` bytes.
    """
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    if len(text) > limit * 4 // 3 + 8:
        raise errors.QueryError(f"the image is larger than {limit} bytes")
    try:
        data = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise errors.QueryError(f"the image is not valid base64: {exc}") from exc
    if not data:
        raise errors.QueryError("the image is empty")
    if len(data) > limit:
        raise errors.QueryError(f"the image is larger than {limit} bytes")
    return data


# -- searching ------------------------------------------------------------------------------------


class QueryPartBody(BaseModel):
    """One weighted part of a composite query; a negative weight pushes results away."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["text", "image", "name", "id"]
    value: str | int = Field(
        description="The text or name; for image, base64 image bytes; for id, an indexed id."
    )
    weight: float = Field(1.0, ge=-100, le=100, allow_inf_nan=False)


class SearchRequest(BaseModel):
    """A search: at most one main query (text, name, image, image_url or id), plus parts; or
    filters alone (a listing of the images that match them).

    The one shape of a query: the HTTP API takes it as ``POST /search``'s body, the remote
    client sends it, the local client answers it, and the CLI builds it from its options.
    """

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, max_length=MAX_TEXT_CHARS, description="A description.")
    name: str | None = Field(
        None, max_length=1_000, description="A name: a concept, a described name, or templates."
    )
    image: str | None = Field(
        None, description="An example image: base64-encoded file bytes (or a data: URL)."
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
        default_factory=list,
        max_length=MAX_QUERY_PARTS,
        description="Texts the results should not match.",
    )
    parts: list[QueryPartBody] = Field(
        default_factory=list, max_length=MAX_QUERY_PARTS, description="Weighted query parts."
    )
    filters: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Payload filters: folder=/x, format=JPEG,PNG, tag=cat, mtime>=2024-01-01, "
        "size<2MB, id=5, taken>=2023-06-01, place=Lisbon, country=PT, camera=iPhone, "
        "keyword=holiday, near=LAT,LON,KM, has=gps. With filters and no query: a listing.",
    )
    ocr: str | None = Field(
        None,
        max_length=MAX_OCR_CHARS,
        description="Words of the text inside the images (read by an index run with OCR): "
        "alone, or with a query and filters. Hits hold at least one word; score: the fraction "
        "of the words held (case-insensitive, one wrong character in words of 5+ letters).",
    )
    k: int = Field(10, ge=1, description="How many results.")
    offset: int = Field(0, ge=0, description="Skip this many results.")
    threshold: float | None = Field(
        None, ge=-1, le=1, allow_inf_nan=False, description="Only results scoring at least this."
    )
    min_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="No results at all when the query's confidence (explain.confidence, 0-1) is "
        "below this; empty: the server's default (search.min_confidence). Not applied to "
        "listings by filters or searches by the text inside images (their confidence is null).",
    )
    collapse_duplicates: bool | Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        False,
        description="Show one image of each near-duplicate group: true (the server's threshold) "
        "or an image↔image similarity threshold.",
    )
    group: bool = Field(
        True,
        description="One hit per video: its best frame (t) with the other matching moments; "
        "false: every matching frame is a hit of its own.",
    )
    expand: bool | None = Field(
        None, description="Visual query expansion; empty: the server's default (search.expand)."
    )
    generate: bool | None = Field(
        None,
        description="Search text and name queries by generated visual features (the "
        "collection's generator); empty: the server's default (search.generate).",
    )
    explain: bool = Field(False, description="Return how the query was built.")
    sort: Literal["taken", "-taken"] | None = Field(
        None,
        description="Order by the date taken: taken (oldest first) or -taken (newest first). "
        "Without a query, the images matching the filters are listed in that order.",
    )


class HitBody(BaseModel):
    """One search result."""

    id: int = Field(description="Point id (stable; below 2**53 for images anyshot indexed).")
    uri: str = Field(description="Where the image is.")
    score: float = Field(
        description="Cosine similarity to the query (higher is closer); in an ocr search, the "
        "fraction of the ocr words the image's text holds."
    )
    payload: dict[str, Any] = Field(description="Size, mtime, sha256, width, height, format, tags.")
    image_url: str = Field(
        description="The original image, served by this API; for a video, the video from the "
        "moment (/videos/{id}#t=SECONDS)."
    )
    thumbnail_url: str = Field(description="A cached JPEG thumbnail (a video's: its frame).")
    t: float | None = Field(
        None, description="A video's hit: seconds from its start to the best matching frame."
    )
    moments: list[dict[str, float]] | None = Field(
        None, description="A video's hit: its other matching frames, {t, score}, best first."
    )

    @model_serializer(mode="wrap")
    def _leave_out_video_keys_of_images(self, handler: SerializerFunctionWrapHandler):
        # An image's hit keeps the shape it always had: no t, no moments. (No return
        # annotation: the schema stays the model's.)
        data = handler(self)
        if data.get("t") is None:
            data.pop("t", None)
            data.pop("moments", None)
        return data


class SearchReply(BaseModel):
    """Search results, best first."""

    hits: list[HitBody]
    explain: dict[str, Any] | None = Field(
        None,
        description="How the query was built (only when asked with explain=true), with "
        "confidence (0-1: how sure the answer is that anything matches; null for listings and "
        "searches by ocr) and no_match (true: no confident match).",
    )


# -- the collection -------------------------------------------------------------------------------


class HealthBody(BaseModel):
    """``GET /healthz``: the server answers, and says it is anyshot."""

    status: Literal["ok"] = "ok"
    service: str = SERVICE_NAME
    version: str = Field(description="anyshot's version.")


class InfoBody(BaseModel):
    """What a collection holds: the object ``anyshot info --json`` prints.

    Backends add their layout (``on_disk_vectors``, ``quantization``, ``read_only``, ...) as
    further keys.
    """

    model_config = ConfigDict(extra="allow")

    collection: str
    location: str
    backend: str
    model: dict[str, Any] | None
    points: int
    indexed_vectors: int | None
    disk_bytes: int | None


class CollectionBody(BaseModel):
    """``GET /collections``: the collection this server searches (clip-back style list)."""

    name: str
    location: str
    backend: str
    model: dict[str, Any] | None
    points: int
    indexed_vectors: int | None
    disk_bytes: int | None


# -- concepts -------------------------------------------------------------------------------------


class ConceptBody(BaseModel):
    """A registered concept (its vectors stay on the server)."""

    name: str
    examples: list[str] = Field(description="Where each example came from (a label, or id:N).")
    created: float = Field(description="When it was registered (seconds since the epoch).")


class ConceptExampleBody(BaseModel):
    """One example of a concept: an image (base64) with a label, or an indexed image's id."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, description="Base64 image bytes.")
    label: str | None = Field(
        None, max_length=4_000, description="What to call the example (e.g. its file name)."
    )
    id: int | None = Field(None, ge=0, le=POINT_ID_MAX, description="An indexed image's id.")


class ConceptRequest(BaseModel):
    """``PUT /concepts/{name}``: define (or redefine) a concept from examples."""

    model_config = ConfigDict(extra="forbid")

    examples: list[ConceptExampleBody] = Field(min_length=1, max_length=64)


# -- tags and duplicates --------------------------------------------------------------------------


class TagRequest(BaseModel):
    """``POST /tags``: tag every image with its best labels (zero-shot)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[Annotated[str, Field(max_length=MAX_NAME_CHARS)]] = Field(
        min_length=1, max_length=10_000
    )
    top: int = Field(1, ge=1, le=100)
    min_score: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class TagReportBody(BaseModel):
    """What a tagging run did."""

    labels: list[str]
    images: int
    tagged: int
    counts: dict[str, int]
    seconds: float


class DuplicatesRequest(BaseModel):
    """``POST /duplicates``: groups of near-duplicate images."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        None, gt=0, le=1, allow_inf_nan=False, description="Image↔image similarity; empty: default."
    )


class DuplicateGroupBody(BaseModel):
    """One group of near-duplicates."""

    ids: list[int]
    uris: list[str]
    score: float


# -- index runs and snapshots ---------------------------------------------------------------------


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
    error_type: str | None = Field(
        None, description="The class of the error a failed run raised, e.g. SourceError."
    )
    created: float
    finished: float | None


class SnapshotDocumentsBody(BaseModel):
    """``GET /export/documents`` and ``POST /load/documents``: what a snapshot's
    ``documents.json`` holds (the collection's concepts; never its trusted roots).

    An empty ``documents`` means the collection has nothing to carry: no file is written.
    """

    model_config = ConfigDict(extra="allow")

    format: int = Field(description="The documents file's format (1).")
    model: dict[str, Any] | None = Field(description="The model the documents' vectors are of.")
    documents: dict[str, Any] = Field(description="Carried documents by name (``concepts``).")


class LoadReportBody(BaseModel):
    """What a load took and what it rejected (``anyshot load --json``)."""

    model_config = ConfigDict(extra="allow")

    loaded: int
    rejected: int
    bad_shards: list[dict[str, Any]]
