"""A request's query as the engine's parts, its example images read through a reader.

A :class:`~search.messages.SearchRequest` carries example images as base64 bytes or URLs.
:func:`request_parts` turns it into :class:`~search.query.QueryPart` values, reading every
image through an :class:`ExampleReader`: a caller in this process reads as itself
(:class:`CallerExamples`: any file, any URL), while a server reads its clients' images under
its own limits and never fetches a URL or reads a file because a request named it
(:class:`search.serving.example_images.RequestExamples`).

Names and labels that will be printed are checked here too (:func:`refuse_control_characters`).
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from indexer.errors import ConfigError, ImageDecodeError, QueryError
from indexer.schema import is_point_id
from search.face import ImageInput, image_bytes_of
from search.listing import NO_QUERY
from search.messages import QueryPartBody, SearchRequest, image_bytes
from search.query import QueryPart

IMAGE_BYTES_LIMIT = 1 << 30
"""The largest example image a request may carry here (a server's body limit is far lower)."""


class ExampleReader(Protocol):
    """How a client reads the example images a request carries (see :meth:`ImageSearch.answer`)."""

    def image(self, data: bytes, label: str, target_size: int | None) -> ImageInput:
        """Decode an example image's bytes (``label`` names it in errors) for a model whose
        input is ``target_size`` pixels square."""
        ...

    def url(self, url: str) -> bytes | int:
        """An example given by URL: its bytes, or the id of the indexed image it names."""
        ...


class CallerExamples:
    """The example images of a caller in this process: URLs and files read as that caller."""

    def image(self, data: bytes, label: str, target_size: int | None) -> ImageInput:
        """Decode the bytes to RGB, as the engine would."""
        from indexer.decode import decode_image

        try:
            return decode_image(data, uri=label, target_size=target_size).image
        except ImageDecodeError as exc:
            raise QueryError(f"cannot use {label}: {exc.reason}") from exc

    def url(self, url: str) -> bytes | int:
        """Download an http(s) URL (or read a file path) with this process's rights."""
        return image_bytes_of(url)


class NoExamples:
    """The reader of a client that reads no example image on its own (a server's: its requests'
    images are read through the server's own reader, passed with each request)."""

    def image(self, data: bytes, label: str, target_size: int | None) -> ImageInput:
        """Refuse."""
        raise ConfigError("a server's client reads example images only through the server")

    def url(self, url: str) -> bytes | int:
        """Refuse."""
        raise ConfigError("a server's client reads example images only through the server")


def request_parts(
    request: SearchRequest, reader: ExampleReader, target_size: int | None
) -> list[QueryPart]:
    """The engine's query parts of a request, its example images read through ``reader``.

    Returns:
        The parts; none for a request of filters alone (a listing).

    Raises:
        QueryError: No query or more than one main query; a part that cannot be used.
    """
    mains = [request.text, request.name, request.image, request.image_url, request.id]
    if sum(value is not None for value in mains) > 1 or not (
        any(value is not None for value in mains) or request.parts or request.filters
    ):
        raise QueryError(NO_QUERY)
    parts: list[QueryPart] = []
    if request.text is not None:
        parts.append(QueryPart("text", request.text))
    if request.name is not None:
        parts.append(QueryPart("name", request.name))
    if request.image is not None:
        parts.append(image_part(request.image, reader, target_size))
    if request.image_url is not None:
        parts.append(url_part(request.image_url, reader, target_size))
    if request.id is not None:
        parts.append(QueryPart("id", request.id))
    parts += [body_part(part, reader, target_size) for part in request.parts]
    parts += [QueryPart("text", text, -1.0) for text in request.negatives]
    if request.negatives and not any(part.weight > 0 for part in parts):
        raise QueryError("a listing by filters takes no negative texts: give a query too")
    return parts


def image_part(
    text: str, reader: ExampleReader, target_size: int | None, weight: float = 1.0
) -> QueryPart:
    """The part of an example image given as base64 (or, for old clients, an http(s) URL)."""
    if text.lower().startswith(("http://", "https://")):
        return url_part(text, reader, target_size, weight)
    data = image_bytes(text, IMAGE_BYTES_LIMIT)
    return QueryPart("image", reader.image(data, "the example image", target_size), weight)


def url_part(
    url: str, reader: ExampleReader, target_size: int | None, weight: float = 1.0
) -> QueryPart:
    """The part of an example image given by URL: an indexed image, or the downloaded one."""
    found = reader.url(url)
    if isinstance(found, int):
        return QueryPart("id", found, weight)
    return QueryPart("image", reader.image(found, f"the image at {url}", target_size), weight)


def body_part(part: QueryPartBody, reader: ExampleReader, target_size: int | None) -> QueryPart:
    """The engine's part of a request's weighted part."""
    if part.kind == "image":
        return image_part(str(part.value), reader, target_size, part.weight)
    if part.kind == "id":
        try:
            point = int(part.value)
        except ValueError:
            raise QueryError(f"an id part needs an integer, not {part.value!r}") from None
        if not is_point_id(point):
            raise QueryError(f"not an image id: {part.value!r}")
        return QueryPart("id", point, part.weight)
    return QueryPart(part.kind, str(part.value), part.weight)


def refuse_control_characters(text: str, what: str) -> None:
    """Refuse a name that will be printed (``anyshot concept list``, ``tag --counts``) when it
    holds control characters: a terminal would run them as escape sequences.

    Raises:
        QueryError: It holds one.
    """
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise QueryError(f"{what} may not contain control characters: {text!r}")


def printable(text: str) -> str:
    """``text`` with its control characters replaced by ``?`` (a label to show, say)."""
    return "".join("?" if unicodedata.category(char) == "Cc" else char for char in text)
