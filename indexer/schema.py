"""The collection schema, defined once: vector name, distance, payload keys and the point-id rule.

Every store backend and the Parquet shards use these names, so a collection moves between
backends without translation.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

VECTOR_NAME = "image"
"""Name of the dense vector in every collection."""

DISTANCE = "cosine"
"""Similarity of vectors; embeddings are L2-normalised, so cosine equals the dot product."""

PAYLOAD_KEYS = ("uri", "size", "mtime", "sha256", "width", "height", "format", "tags")
"""Payload keys of an image point. ``tags`` holds labels added later (zero-shot tagging)."""

METADATA_KEYS = (
    "taken",
    "taken_ts",
    "lat",
    "lon",
    "alt",
    "location",
    "place",
    "region",
    "country",
    "camera",
    "lens",
    "keywords",
    "title",
    "description",
    "meta_version",
)
"""Payload keys read from a photo's own metadata (:mod:`indexer.photo_metadata`) and its place
(:mod:`indexer.places`); each is absent when the file does not say, never zero or empty.
``taken`` is ISO 8601, ``taken_ts`` the same wall-clock time in seconds as if it were UTC,
``location`` is ``{"lon", "lat"}`` for geo filters, ``country`` ISO 3166 alpha-2, ``keywords``
a list. ``meta_version`` marks a payload whose file was read for metadata. Lower-cased twins
for case-insensitive filters: ``camera_lc``, ``keywords_lc``, ``place_lc`` (place and region
names)."""

OCR_KEYS = ("text", "ocr_version")
"""Payload keys of the text read inside an image (:mod:`indexer.ocr`): ``text`` (absent when
none was found, never empty) and ``ocr_version``, which marks an image whose text was looked
for."""

METADATA_FILTER_TWINS = ("camera_lc", "keywords_lc", "place_lc")
"""Lower-cased copies of metadata keys that filters match (see :data:`METADATA_KEYS`)."""

VIDEO_KEYS = ("kind", "t", "duration", "frames", "codec")
"""Payload keys of a video frame (:mod:`indexer.video_indexing`): ``kind`` is ``"video"``, ``t``
the frame's time and ``duration`` the video's, in seconds; ``frames`` the video's count of
stored frames, ``codec`` FFmpeg's name. A frame's id is :func:`indexer.video.frame_id` of its
uri and ``t``, not :func:`point_id` of its uri."""

INDEXED_PAYLOAD_KEYS = {
    "uri": "keyword",
    "format": "keyword",
    "tags": "keyword",
    "mtime": "float",
    "size": "integer",
    "taken_ts": "float",
    "country": "keyword",
    "place_lc": "keyword",
    "keywords_lc": "keyword",
    "location": "geo",
}
"""Payload keys that get an index, by type, where the backend supports payload indexes.

Each index costs an embedded store 5–8 MB of pre-allocated files whatever its size (Qdrant
Edge, measured on tmpfs): the metadata filters' five add about 33 MB to every store, against
filtered searches that stay fast at a million points."""

ON_DEMAND_PAYLOAD_KEYS = {"text": "text"}
"""Payload keys indexed only once a run stores them (:meth:`VectorStore.index_payload_key`):
``text``, the text read inside images (:mod:`indexer.ocr`), gets a full-text index (words,
lower-cased), which pre-allocates about 35 MB in an embedded store: only stores indexed with
OCR pay it."""

POINT_ID_BITS = 53
"""The ids anyshot gives (:func:`point_id`) are unsigned integers below 2**53, so JavaScript
front ends (clip-front) read them exactly. Collision odds: about n²/2**54, i.e. 6e-5 at one
million images."""

POINT_ID_LIMIT = 2**64
"""The ids that can name a point: ``0 <= id < POINT_ID_LIMIT``, Qdrant's unsigned 64-bit ids
(a collection loaded from elsewhere may use all of them). Any other integer names no point: a
lookup finds nothing, and a query or filter that names one is refused."""

POINT_ID_MAX = POINT_ID_LIMIT - 1
"""The largest id that can name a point (an inclusive bound, for request schemas)."""


def is_point_id(value: int) -> bool:
    """True when ``value`` can name a point (see :data:`POINT_ID_LIMIT`)."""
    return 0 <= value < POINT_ID_LIMIT


def storable_ids(ids: Iterable[int]) -> list[int]:
    """The ids that can name a point, in order; the others cannot be in any collection."""
    return [int(i) for i in ids if is_point_id(int(i))]


def point_id(uri: str) -> int:
    """Return the stable point id of an image: a 53-bit hash of its URI.

    Args:
        uri: The image's URI or absolute path, exactly as stored in the payload.

    Returns:
        An integer in ``[0, 2**53)``; the same URI always gives the same id.
    """
    # surrogateescape: a name that is not UTF-8 hashes as its raw bytes instead of failing
    # (stored URIs never hold such names: see path_uri).
    digest = hashlib.blake2b(uri.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - POINT_ID_BITS)


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
FILE_URL_PREFIX = "file://"


def path_uri(path: str) -> str:
    """The URI under which a local file is stored: its absolute path, as text, losslessly.

    A path that is valid UTF-8 is its own URI. A path whose name is not (a file name in
    another encoding, read with Python's ``surrogateescape``) becomes a ``file://`` URL with
    its raw bytes percent-encoded, so that stores, Parquet and JSON (which all need UTF-8)
    can keep it and :func:`uri_path` gives back the very same bytes.

    Args:
        path: An absolute path, as ``os`` functions return it.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return FILE_URL_PREFIX + urllib.parse.quote(os.fsencode(path), safe="/")
    return path


def uri_path(uri: str) -> str | None:
    """The local path of a stored URI, or None when it is not a local file.

    Absolute paths are themselves; ``file://`` URLs on this machine (no host, or
    ``localhost``) are decoded to the exact bytes of their path; relative paths (never stored
    by an index run) and every other URL (http(s), ``file://`` on another host, other
    schemes) are not local files.
    """
    match = _URL_SCHEME.match(uri)
    if match is None:
        return uri if os.path.isabs(uri) else None
    if match.group(1).lower() != "file":
        return None
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        return None
    path = os.fsdecode(urllib.parse.unquote_to_bytes(parts.path))
    return path if os.path.isabs(path) else None


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """An image found by discovery: where it is and what the file system says of it.

    Attributes:
        uri: Absolute path or http(s) URL.
        size: Size in bytes; -1 when unknown (URLs before download).
        mtime: Modification time in seconds since the epoch; 0.0 when unknown.
    """

    uri: str
    size: int = -1
    mtime: float = 0.0

    @property
    def id(self) -> int:
        """The record's point id."""
        return point_id(self.uri)


@dataclass(slots=True)
class ImagePayload:
    """What the store keeps beside each vector; keys are :data:`PAYLOAD_KEYS`."""

    uri: str
    size: int
    mtime: float
    sha256: str
    width: int
    height: int
    format: str
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the payload as a plain dict for the store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePayload:
        """Build a payload from a stored dict, ignoring keys it does not know."""
        return cls(
            uri=str(data["uri"]),
            size=int(data.get("size", -1)),
            mtime=float(data.get("mtime", 0.0)),
            sha256=str(data.get("sha256", "")),
            width=int(data.get("width", 0)),
            height=int(data.get("height", 0)),
            format=str(data.get("format", "")),
            tags=list(data.get("tags") or []),
        )


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """Which model built a collection; a store refuses queries from any other.

    Attributes:
        name: The model name as given to anyshot (``anyshot-tiny``, ``ViT-B-32``, ...).
        pretrained: The pretrained tag or checkpoint file name, if any.
        dim: Embedding dimension.
        fingerprint: A content hash of local weights, when they are local files.
    """

    name: str
    pretrained: str | None
    dim: int
    fingerprint: str | None = None

    @property
    def label(self) -> str:
        """``name`` or ``name/pretrained``: what a user recognises."""
        return f"{self.name}/{self.pretrained}" if self.pretrained else self.name

    def is_compatible(self, other: ModelIdentity) -> bool:
        """True when vectors of ``other`` can be searched against vectors of ``self``."""
        if (self.name, self.pretrained, self.dim) != (other.name, other.pretrained, other.dim):
            return False
        both_known = self.fingerprint is not None and other.fingerprint is not None
        return not both_known or self.fingerprint == other.fingerprint

    def to_dict(self) -> dict[str, Any]:
        """Return the identity as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        """Build an identity from :meth:`to_dict`'s output."""
        return cls(
            name=str(data["name"]),
            pretrained=data.get("pretrained"),
            dim=int(data["dim"]),
            fingerprint=data.get("fingerprint"),
        )
