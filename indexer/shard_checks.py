"""Row checks of a snapshot before a store takes it: a snapshot may come from anywhere.

``anyshot load`` takes Parquet shards that someone else may have written. Each row must hold
what an index run on this machine would have stored, or it is rejected with a reason:

- ``uri``: an absolute, normalised local path (no ``.`` or ``..`` parts), a ``file://`` URL on
  this machine, or an http(s) URL with a host; nothing else (``javascript:``, relative paths,
  ``file://otherhost/...``);
- ``id``: exactly :func:`indexer.schema.point_id` of the uri, once per shard; for a video frame
  (``kind: "video"``) :func:`indexer.video.frame_id` of the uri and its time ``t``;
- ``embedding``: finite numbers of unit norm (within :data:`NORM_TOLERANCE`), as the models
  make them;
- payload: sizes, times, texts, tags and tag scores (probabilities) of sane types and
  lengths; of the ``extra`` keys (:data:`indexer.parquet_store.EXTRA_KEYS`: a photo's metadata
  and place, the text read in it, a video frame's time) only those, each of its type and in
  its range (a latitude within ±90°, a time that is a date, a frame time from 0 on).

A uri that passes is still only a claim: the HTTP API serves an image only from the folders
and origins the store trusts (:mod:`indexer.trusted_roots`), which ``load`` never widens
unless told to (``--trust``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from indexer.parquet_store import EXTRA_KEYS, PAYLOAD_COLUMNS, ParquetBatch
from indexer.schema import point_id, uri_path
from indexer.trusted_roots import origin_of
from indexer.video import frame_id

NORM_TOLERANCE = 1e-3
"""Largest accepted ``|norm - 1|`` of a stored vector (embeddings are L2-normalised)."""
MAX_URI_CHARS = 8192
MAX_TEXT_CHARS = 256
"""Longest accepted ``format`` and ``sha256``."""
MAX_TAGS = 1000
MAX_TAG_CHARS = 1024
MAX_LONG_TEXT_CHARS = 100_000
"""Longest accepted ``title``, ``description`` and ``text`` (the text read in an image)."""
MAX_SECONDS = 10 * 365 * 86_400.0
"""Largest accepted frame time or video duration."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True, slots=True)
class RowVerdict:
    """The rows of a shard a store may take, and the others with reasons.

    Attributes:
        kept: Row numbers to load, in order.
        rejected: ``(row number, reason)`` of the others.
    """

    kept: list[int]
    rejected: list[tuple[int, str]]


def check_rows(batch: ParquetBatch, dim: int) -> RowVerdict:
    """Check every row of a shard (see the module's rules).

    Args:
        batch: A shard that passed its integrity checks (:func:`read_shard`).
        dim: The collection's vector dimension.
    """
    vector_reasons = vector_refusals(batch.vectors, dim)
    kept: list[int] = []
    rejected: list[tuple[int, str]] = []
    first_row_of: dict[int, int] = {}
    for row, (raw_id, payload) in enumerate(zip(batch.ids, batch.payloads, strict=True)):
        uri = payload.get("uri")
        reason = uri_refusal(uri)
        if reason is None:
            assert isinstance(uri, str)
            reason = extra_refusal(payload)
        if reason is None:
            assert isinstance(uri, str)
            video = payload.get("kind") == "video"
            expected = frame_id(uri, float(payload["t"])) if video else point_id(uri)
            if int(raw_id) != expected:
                of = "uri and time" if video else "uri"
                reason = f"id {int(raw_id)} is not the id of its {of} ({expected})"
            elif expected in first_row_of:
                reason = f"duplicate of row {first_row_of[expected]} of this shard"
            else:
                reason = vector_reasons[row] or payload_refusal(payload)
        if reason is None:
            first_row_of[int(raw_id)] = row
            kept.append(row)
        else:
            rejected.append((row, reason))
    return RowVerdict(kept, rejected)


def uri_refusal(uri: Any) -> str | None:
    """Why ``uri`` may not be stored, or None if it may."""
    if not isinstance(uri, str) or not uri:
        return "no uri"
    if len(uri) > MAX_URI_CHARS:
        return f"uri longer than {MAX_URI_CHARS} characters"
    if "\x00" in uri:
        return "uri holds a NUL character"
    if uri.startswith("/"):
        return _path_refusal(uri)
    match = _SCHEME.match(uri)
    if match is None:
        return "relative path: a uri is an absolute path, a file:// URL or an http(s) URL"
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return None if origin_of(uri) is not None else "http(s) URL without a host"
    if scheme == "file" and uri[5:7] == "//":
        path = uri_path(uri)
        if path is None:
            return "file:// URL on another host"
        return _path_refusal(path)
    return f"unsupported uri scheme {scheme!r}: only absolute paths, file:// and http(s) URLs"


def _path_refusal(path: str) -> str | None:
    if not path.startswith("/"):
        return "not an absolute path"
    if "\x00" in path:
        return "path holds a NUL character"
    if any(part in (".", "..") for part in path.split("/")):
        return "path with '.' or '..' parts"
    return None


def vector_refusals(vectors: np.ndarray, dim: int) -> list[str | None]:
    """Per row, why a vector may not be stored (not finite, not of unit norm), or None."""
    rows = np.asarray(vectors)
    if rows.ndim != 2 or rows.shape[1] != dim:
        shown = rows.shape[1] if rows.ndim == 2 else rows.shape
        return [f"vector of dimension {shown}, not {dim}"] * len(rows)
    finite = np.isfinite(rows).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], rows, 0).astype(np.float64), axis=1)
    reasons: list[str | None] = []
    for ok, norm in zip(finite, norms, strict=True):
        if not ok:
            reasons.append("vector with NaN or infinite values")
        elif abs(norm - 1.0) > NORM_TOLERANCE:
            reasons.append(f"vector norm {norm:.4g}, not 1 (embeddings are unit vectors)")
        else:
            reasons.append(None)
    return reasons


def payload_refusal(payload: dict[str, Any]) -> str | None:
    """Why a payload's values may not be stored (types, ranges, lengths), or None."""
    size = payload.get("size")
    if size is not None and (not _is_int(size) or size < -1):
        return f"size {size!r} is not a byte count"
    mtime = payload.get("mtime")
    if mtime is not None and (not _is_number(mtime) or not math.isfinite(mtime)):
        return f"mtime {mtime!r} is not a finite time"
    for key in ("width", "height"):
        value = payload.get(key)
        if value is not None and (not _is_int(value) or value < 0):
            return f"{key} {value!r} is not a pixel count"
    for key in ("format", "sha256"):
        value = payload.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT_CHARS):
            return f"{key} is not a text of at most {MAX_TEXT_CHARS} characters"
    tags = payload.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or len(tags) > MAX_TAGS:
            return f"tags is not a list of at most {MAX_TAGS} texts"
        if not all(isinstance(tag, str) and len(tag) <= MAX_TAG_CHARS for tag in tags):
            return f"a tag is not a text of at most {MAX_TAG_CHARS} characters"
    return tag_scores_refusal(payload.get("tag_scores"))


def _text(limit: int) -> Any:
    return lambda v: isinstance(v, str) and len(v) <= limit


def _texts(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) <= MAX_TAGS
        and all(isinstance(x, str) and len(x) <= MAX_TAG_CHARS for x in v)
    )


def _within(low: float, high: float) -> Any:
    return lambda v: _is_number(v) and math.isfinite(v) and low <= v <= high


def _date(v: Any) -> bool:
    if not isinstance(v, str) or len(v) > 64:
        return False
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _location(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and set(v) == {"lon", "lat"}
        and _within(-180, 180)(v["lon"])
        and _within(-90, 90)(v["lat"])
    )


def _count(v: Any) -> bool:
    return _is_int(v) and 0 <= v <= 1_000_000


_EXTRA_RULES: dict[str, tuple[Any, str]] = {
    "taken": (_date, "an ISO 8601 date"),
    "taken_ts": (_within(-1e12, 1e12), "a finite time"),
    "lat": (_within(-90, 90), "a latitude"),
    "lon": (_within(-180, 180), "a longitude"),
    "alt": (_within(-1e6, 1e6), "an altitude in metres"),
    "location": (_location, "{lon, lat} in range"),
    "place": (_text(MAX_TEXT_CHARS), "a short text"),
    "region": (_text(MAX_TEXT_CHARS), "a short text"),
    "country": (lambda v: isinstance(v, str) and len(v) == 2, "a two-letter code"),
    "camera": (_text(MAX_TEXT_CHARS), "a short text"),
    "camera_lc": (_text(MAX_TEXT_CHARS), "a short text"),
    "lens": (_text(MAX_TEXT_CHARS), "a short text"),
    "keywords": (_texts, "a list of texts"),
    "keywords_lc": (_texts, "a list of texts"),
    "place_lc": (_texts, "a list of texts"),
    "title": (_text(MAX_LONG_TEXT_CHARS), "a text"),
    "description": (_text(MAX_LONG_TEXT_CHARS), "a text"),
    "meta_version": (_count, "a version number"),
    "text": (_text(MAX_LONG_TEXT_CHARS), "a text"),
    "ocr_version": (_count, "a version number"),
    "kind": (lambda v: v == "video", '"video"'),
    "t": (_within(0, MAX_SECONDS), "a time in seconds"),
    "duration": (_within(0, MAX_SECONDS), "a duration in seconds"),
    "frames": (_count, "a frame count"),
    "codec": (_text(MAX_TEXT_CHARS), "a short text"),
}
assert set(_EXTRA_RULES) == set(EXTRA_KEYS)


def extra_refusal(payload: dict[str, Any]) -> str | None:
    """Why the payload keys beyond the columns may not be stored, or None if they may."""
    for key, value in payload.items():
        if key in PAYLOAD_COLUMNS:
            continue
        rule = _EXTRA_RULES.get(key)
        if rule is None:
            return f"unknown payload key {key[:50]!r}"
        check, what = rule
        if not check(value):
            return f"{key} is not {what}"
    if payload.get("kind") == "video" and "t" not in payload:
        return "a video frame without its time t"
    return None


def tag_scores_refusal(scores: Any) -> str | None:
    """Why ``tag_scores`` (label → probability) may not be stored, or None if it may."""
    if scores is None:
        return None
    if not isinstance(scores, dict) or len(scores) > MAX_TAGS:
        return f"tag_scores is not a map of at most {MAX_TAGS} labels"
    for label, score in scores.items():
        if not isinstance(label, str) or len(label) > MAX_TAG_CHARS:
            return f"a tag_scores label is not a text of at most {MAX_TAG_CHARS} characters"
        if not _is_number(score) or not 0.0 <= score <= 1.0:
            return f"tag score {score!r} of {label[:50]!r} is not a probability"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
