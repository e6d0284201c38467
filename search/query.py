"""Query parts and the combined-query syntax.

A combined query is a list of :class:`QueryPart`: texts, example images, names and indexed
image ids, each with a weight; a negative weight pushes results away from that part. The engine
embeds every part, sums the unit vectors times their weights and searches with the unit sum.

The string syntax (:func:`parse_query`), one part per token, separated by spaces::

    +"a dog on a beach" +photo.jpg -"people" +name:cat 2*"sunset" -0.5*id:1234

- a sign ``+`` (default) or ``-`` (a negative part), then an optional weight ``W*``
  (``2*``, ``0.5*``), then the value;
- ``"quoted text"`` or ``'quoted text'``: a description; ``text:word`` or a bare word that is not
  a file name also is one (bare words next to each other form one description:
  ``beach sunset -people`` is ``+"beach sunset" -"people"``);
- ``name:NAME`` (or ``name:"two words"``): a name (concept, knowledge base, prompt templates);
- ``id:123``: an indexed image ("more like this");
- ``image:PATH``, ``http(s)://...`` or a bare token ending in an image extension
  (``.jpg``, ``.png``, ...): an example image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from indexer.errors import QueryError
from indexer.formats import is_image_name

ImageInput = str | Path | bytes | Image.Image
"""An example image: a file path, an http(s) URL, encoded bytes or a PIL image."""

ExampleInput = ImageInput | int
"""An example image, or the id of an indexed image (``int`` or ``"id:N"``)."""

PartKind = Literal["text", "image", "name", "id"]
PART_KINDS: tuple[str, ...] = ("text", "image", "name", "id")


@dataclass(frozen=True, slots=True)
class QueryPart:
    """One part of a query.

    Attributes:
        kind: ``text`` (a description), ``image`` (an example image: path, URL, bytes or PIL
            image), ``name`` (resolved through concepts, the knowledge base or prompt
            templates) or ``id`` (an indexed image).
        value: The text, image, name or id.
        weight: How much the part counts; negative: results should be unlike it.
    """

    kind: PartKind
    value: Any
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in PART_KINDS:
            raise QueryError(f"unknown query part kind {self.kind!r}: use one of {PART_KINDS}")
        if self.weight == 0:
            raise QueryError(f"query part {self.describe()} has weight 0")

    def describe(self) -> str:
        """A short label for explanations: ``text:'a red circle'``, ``image:<bytes>``, ..."""
        value = self.value
        if self.kind == "image" and not isinstance(value, str):
            value = f"<{type(value).__name__}>"
        elif isinstance(value, str):
            value = repr(value)
        return f"{self.kind}:{value}"

    def to_dict(self) -> dict[str, Any]:
        """The part as JSON-ready values (in-memory images as a placeholder)."""
        value = self.value
        if self.kind == "image" and not isinstance(value, str):
            value = f"<{type(value).__name__}>"
        elif self.kind == "image":
            value = str(value)
        return {"kind": self.kind, "value": value, "weight": self.weight}


_TOKEN = re.compile(
    r"""
    \s*
    (?P<sign>[+-])?
    (?:(?P<weight>\d+(?:\.\d*)?|\.\d+)\*)?
    (?:(?P<prefix>text|name|id|image):)?
    (?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"']+))
    """,
    re.VERBOSE,
)


def parse_query(query: str) -> list[QueryPart]:
    """Parse a combined query string into parts (syntax: this module's docstring).

    Args:
        query: E.g. ``+"beach" +photo.jpg -"people" +name:cat 2*"sunset"``.

    Returns:
        The parts, in order; consecutive bare words with the same sign form one text part.

    Raises:
        QueryError: The string is empty, has an unclosed quote, a bad id, or only negative parts.
    """
    if not query or not query.strip():
        raise QueryError("empty query")
    parts: list[QueryPart] = []
    position = 0
    words: list[str] = []
    words_weight = 1.0

    def flush_words() -> None:
        if words:
            parts.append(QueryPart("text", " ".join(words), words_weight))
            words.clear()

    text = query.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            rest = text[position:].strip()
            raise QueryError(f"cannot parse the query at {rest[:40]!r} (unclosed quote?)")
        position = match.end()
        if position < len(text) and not text[position].isspace():
            raise QueryError(f"cannot parse the query at {text[match.start() :].strip()[:40]!r}")
        weight = float(match["weight"]) if match["weight"] else 1.0
        if match["sign"] == "-":
            weight = -weight
        quoted = match["dq"] if match["dq"] is not None else match["sq"]
        value = quoted if quoted is not None else match["bare"]
        prefix = match["prefix"]
        if not value.strip():
            raise QueryError(f"empty part in the query at {match.group(0).strip()!r}")
        if weight == 0:
            raise QueryError(f"weight 0 in the query at {match.group(0).strip()!r}")
        kind = prefix or _kind_of(value, quoted is not None)
        if kind == "text" and prefix is None and quoted is None and not match["weight"]:
            # Bare words run together into one description.
            if words and words_weight != weight:
                flush_words()
            words.append(value)
            words_weight = weight
            continue
        flush_words()
        parts.append(_part(kind, value, weight))
    flush_words()
    if not any(part.weight > 0 for part in parts):
        raise QueryError("a query needs at least one positive part")
    return parts


def _kind_of(value: str, quoted: bool) -> PartKind:
    if quoted:
        return "text"
    lowered = value.lower()
    if lowered.startswith(("http://", "https://")) or is_image_name(lowered):
        return "image"
    return "text"


def _part(kind: str, value: str, weight: float) -> QueryPart:
    if kind == "id":
        try:
            return QueryPart("id", int(value), weight)
        except ValueError:
            raise QueryError(f"not an image id: {value!r} (ids are integers)") from None
    if kind in ("text", "name"):
        value = value.strip()
    return QueryPart(kind, value, weight)  # type: ignore[arg-type]
