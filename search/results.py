"""What searches, tagging runs and duplicate finding return: plain values, light to import.

They cross HTTP as their ``to_dict`` and come back through ``from_dict``, so a remote client
returns the very types a local one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result, best first in a result list.

    A video is found by its frames (payload ``kind: "video"``): the hit is the best frame's
    (its ``id``, ``score`` and ``t``), ``uri`` is the video file, and ``moments`` lists the
    video's other matching frames, best first, when the search grouped frames per video.

    Attributes:
        id: The image's point id (stable: derived from its URI; a frame's from URI and time).
        uri: Where the image (or the video) is.
        score: Cosine similarity to the query (higher is closer); in a search by the text inside
            images (``ocr``), the fraction of its words found (:mod:`search.text_search`).
        payload: Everything stored with the image (size, mtime, sha256, width, ...).
        moments: The other matching frames of a video, ``{"t", "score"}``, best first; None
            for images and for frames of an ungrouped search.
    """

    id: int
    uri: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
    moments: list[dict[str, float]] | None = None

    @property
    def t(self) -> float | None:
        """Seconds from the start of the video to this frame; None for an image."""
        value = self.payload.get("t") if self.payload.get("kind") == "video" else None
        return float(value) if isinstance(value, int | float) else None

    def to_dict(self) -> dict[str, Any]:
        """Return the hit as JSON-ready values (``t`` and ``moments`` only for videos)."""
        data: dict[str, Any] = {
            "id": self.id,
            "uri": self.uri,
            "score": round(self.score, 6),
            "payload": self.payload,
        }
        t = self.t
        if t is not None:
            data["t"] = t
            data["moments"] = self.moments or []
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        """Rebuild a hit from :meth:`to_dict` (or an HTTP reply's hit)."""
        moments = data.get("moments")
        return cls(
            int(data["id"]),
            str(data["uri"]),
            float(data["score"]),
            dict(data.get("payload") or {}),
            [{"t": float(m["t"]), "score": float(m["score"])} for m in moments]
            if moments
            else None,
        )


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits and how the query was answered.

    Attributes:
        hits: The results, best first.
        explain: The parts used (``parts``), how each name was resolved (``names``: dicts with
            ``name`` and ``resolved_as`` = ``concept``, ``description`` or ``templates``),
            ``expansion`` (``applied`` and the ids it used), ``score_scale``, ``threshold``,
            ``collapsed`` (near-duplicates dropped), and ``warnings`` when something about the
            answer deserves a word (``anyshot-tiny`` asked for words outside its domain).
            ``confidence`` (0–1, how sure the answer is that anything matches; null for a
            listing by filters or a search by the text inside images) and ``no_match`` (the
            confidence is below ``search.no_match_threshold``), see :mod:`search.confidence`.
    """

    hits: list[Hit]
    explain: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready values."""
        return {"hits": [hit.to_dict() for hit in self.hits], "explain": self.explain}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        """Rebuild a result from :meth:`to_dict` (or an HTTP search reply)."""
        return cls([Hit.from_dict(h) for h in data["hits"]], dict(data.get("explain") or {}))


@dataclass(frozen=True)
class TagReport:
    """What a tagging run did.

    Attributes:
        labels: The labels offered.
        images: Images looked at.
        tagged: Images that got at least one tag.
        counts: Images per tag, most frequent first (tags no image got are listed with 0).
        seconds: Time taken.
    """

    labels: list[str]
    images: int
    tagged: int
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "labels": self.labels,
            "images": self.images,
            "tagged": self.tagged,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TagReport:
        """Rebuild a report from :meth:`to_dict` (or an HTTP reply)."""
        return cls(
            labels=[str(label) for label in data["labels"]],
            images=int(data["images"]),
            tagged=int(data["tagged"]),
            counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are near-duplicates of one another.

    Attributes:
        ids: Point ids, ascending.
        uris: Their URIs, in the same order.
        score: The weakest image↔image similarity that joined the group (every member is
            linked to the others through pairs at least this similar).
    """

    ids: list[int]
    uris: list[str]
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The group as JSON-ready values."""
        return {"ids": self.ids, "uris": self.uris, "score": round(self.score, 6)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DuplicateGroup:
        """Rebuild a group from :meth:`to_dict` (or an HTTP reply)."""
        return cls(
            [int(i) for i in data["ids"]], [str(u) for u in data["uris"]], float(data["score"])
        )
