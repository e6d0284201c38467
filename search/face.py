"""The one face of a collection: what every client offers, local or remote.

:class:`CollectionClient` is the interface the CLI, the HTTP API and Python users program
against. Two classes implement it:

- :class:`search.client.ImageSearch` runs the collection in this process (an embedded store
  folder, a Qdrant server URL, or ``:memory:``);
- :class:`search.remote_client.RemoteImageSearch` talks to a running ``anyshot serve``.

:func:`search.connect` picks one from a location. The work both share lives here: a query
given as keyword arguments becomes the one serialisable :class:`SearchRequest`
(:mod:`search.messages`) before either answers it, and example images given as paths, URLs or
PIL images are read on the caller's machine, so that a server never reads the caller's files
nor fetches the caller's URLs.
"""

from __future__ import annotations

import abc
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from PIL import Image

from indexer.access import AccessPolicy, fetch_url, read_local_file
from indexer.config import Runner
from indexer.errors import ConfigError, ImageDecodeError, QueryError
from indexer.ocr import query_words
from indexer.progress import ProgressCallback
from indexer.schema import uri_path
from indexer.stores.interface import PayloadFilter
from search.confidence import check_min_confidence
from search.filters import filter_expressions, parse_filters
from search.listing import NO_QUERY, sort_key
from search.messages import (
    ConceptExampleBody,
    ConceptRequest,
    InfoBody,
    QueryPartBody,
    SearchRequest,
    image_text,
)
from search.query import ExampleInput, ImageInput, QueryPart
from search.results import DuplicateGroup, Hit, SearchResult, TagReport

if TYPE_CHECKING:
    from indexer.indexing import IndexReport
    from indexer.transfer import LoadReport
    from search.concepts import Concept

CollectionInfo = InfoBody
"""What a collection holds: the object ``anyshot info --json`` prints."""


class CollectionClient(abc.ABC):
    """Index and search one collection, wherever it lives. Use it as a context manager.

    Attributes:
        location: Where the collection is (a folder, ``:memory:``, a Qdrant URL, or the URL of
            the ``anyshot serve`` that holds it).
    """

    location: str

    # -- what each client answers ---------------------------------------------------------------

    @abc.abstractmethod
    def index(
        self,
        source: str | Path,
        *,
        runner: Runner = "auto",
        progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Index a folder, a list file (text or Parquet) or one image.

        Args:
            source: What to index (a path on the machine that runs the collection).
            runner: ``inline``, ``prefect``, ``dask`` or ``auto`` (see :mod:`indexer.config`).
            progress: Called as ``progress(done, total)`` as batches are done.

        Returns:
            Counts of indexed, unchanged, removed and skipped images, problems, time taken.
        """

    @abc.abstractmethod
    def answer(self, request: SearchRequest) -> SearchResult:
        """Answer one search in its serialisable shape (what :meth:`query` builds)."""

    @abc.abstractmethod
    def define_concept(self, name: str, request: ConceptRequest) -> Concept:
        """Register ``name`` from examples in their serialisable shape (see :meth:`add_concept`)."""

    @abc.abstractmethod
    def concepts(self) -> list[Concept]:
        """The registered concepts, by name."""

    @abc.abstractmethod
    def remove_concept(self, name: str) -> None:
        """Forget a concept.

        Raises:
            QueryError: No concept has that name.
        """

    @abc.abstractmethod
    def tag(
        self,
        labels: Sequence[str],
        *,
        top: int = 1,
        min_score: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> TagReport:
        """Tag every image with its best labels (zero-shot), in the payload key ``tags``."""

    @abc.abstractmethod
    def tag_counts(self) -> dict[str, int]:
        """Images per tag, most frequent first."""

    @abc.abstractmethod
    def duplicates(
        self, *, threshold: float | None = None, progress: ProgressCallback | None = None
    ) -> list[DuplicateGroup]:
        """Groups of near-duplicate images (image↔image similarity at least ``threshold``)."""

    @abc.abstractmethod
    def info(self) -> CollectionInfo:
        """What the collection holds: location, backend, model, points, size, layout."""

    @abc.abstractmethod
    def export(
        self, folder: str | os.PathLike[str], *, progress: ProgressCallback | None = None
    ) -> int:
        """Write the collection as a snapshot (Parquet shards + carried documents) into a folder
        on this machine; returns the number of points written."""

    @abc.abstractmethod
    def load(
        self,
        folder: str | os.PathLike[str],
        *,
        trust: Sequence[str] = (),
        progress: ProgressCallback | None = None,
    ) -> LoadReport:
        """Load a snapshot folder of this machine into the collection, checking every shard and
        row; ``trust`` adds folders or origins the server may serve the loaded images from."""

    def train_generator(
        self,
        *,
        captions: str | Path | None = None,
        kind: str | None = None,
        epochs: int | None = None,
    ) -> dict[str, Any]:
        """Train the collection's generator of visual features (``--generate`` searches).

        Only where the collection is opened in this process; a served one refuses.

        Raises:
            ConfigError: The collection is reached over HTTP.
        """
        raise ConfigError(
            f"{self.location}: train the generator where the collection is held (stop `anyshot "
            f"serve`, or train in its process)"
        )

    @abc.abstractmethod
    def close(self) -> None:
        """Release the collection; the client is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the keyword forms, shared -----------------------------------------------------------------

    def query(
        self,
        text: str | None = None,
        *,
        image: ImageInput | None = None,
        name: str | None = None,
        similar_to: int | None = None,
        negatives: Sequence[QueryPart | str] | QueryPart | str = (),
        parts: Sequence[QueryPart] = (),
        k: int = 10,
        offset: int = 0,
        where: PayloadFilter | Sequence[str] | str | None = None,
        threshold: float | None = None,
        min_confidence: float | None = None,
        expand: bool | None = None,
        generate: bool | None = None,
        collapse_duplicates: bool | float = False,
        group: bool = True,
        explain: bool = True,
        sort: str | None = None,
        ocr: str | None = None,
    ) -> SearchResult:
        """Search, and say how the query was answered (``SearchResult.explain``).

        Args:
            text: A description (zero-shot).
            image: An example image: path, http(s) URL, bytes or PIL image (one-shot). Paths
                and URLs are read here, on the caller's machine.
            name: A name: a registered concept, a knowledge-base entry, or prompt templates.
            similar_to: The id of an indexed image ("more like this").
            negatives: Parts to move away from; plain strings are texts. A part's weight
                counts as negative whatever its sign.
            parts: Weighted parts (:class:`QueryPart`, e.g. from :func:`parse_query`), alone
                or beside one of the four above (which then counts as a part of weight 1).
            k: How many hits.
            offset: How many of the best hits to skip (pagination).
            where: A :class:`PayloadFilter`, or filter expressions (:func:`parse_filters`).
            threshold: Minimum score on the query's own scale (see ``explain``).
            min_confidence: No hits at all when the query's confidence (``explain``'s
                ``confidence``, 0–1: does anything match?) is below this; None: the setting
                ``search.min_confidence``. Listings and searches by ``ocr`` have none.
            expand: Visual query expansion for text and name queries; None: the setting.
            generate: Search text and name queries by generated visual features (the
                collection's generator, ``anyshot generator train``); None: the setting.
            collapse_duplicates: Keep only the best of near-duplicate hits (True: the
                setting's threshold; a float: that image↔image threshold).
            group: One hit per video (its best frame, with ``moments``); False: every
                matching frame is a hit of its own.
            explain: Return how the query was built.
            sort: ``"taken"`` (oldest first) or ``"-taken"`` (newest first): the hits in the
                order of the date taken. With no query at all, ``where`` alone lists the
                images that match it (in id order, or by date with ``sort``; score 0).
            ocr: Words of the text inside the images (read by an index run with OCR on):
                alone, the images whose text holds them; with a query, those of them the
                query ranks. Score: the fraction of the words an image's text holds (see
                :mod:`search.text_search`).

        Returns:
            Hits (best first) and ``explain``.

        Raises:
            QueryError: No query or more than one main query, an empty text, an unreadable
                image, an unknown id or name, a bad filter.
        """
        request = build_request(
            text,
            image=image,
            name=name,
            similar_to=similar_to,
            negatives=negatives,
            parts=parts,
            k=k,
            offset=offset,
            where=where,
            threshold=threshold,
            min_confidence=min_confidence,
            expand=expand,
            generate=generate,
            collapse_duplicates=collapse_duplicates,
            group=group,
            explain=explain,
            sort=sort,
            ocr=ocr,
        )
        return self.answer(request)

    def search(
        self,
        text: str | None = None,
        *,
        image: ImageInput | None = None,
        name: str | None = None,
        similar_to: int | None = None,
        negatives: Sequence[QueryPart | str] | QueryPart | str = (),
        parts: Sequence[QueryPart] = (),
        k: int = 10,
        offset: int = 0,
        where: PayloadFilter | Sequence[str] | str | None = None,
        threshold: float | None = None,
        min_confidence: float | None = None,
        expand: bool | None = None,
        generate: bool | None = None,
        collapse_duplicates: bool | float = False,
        group: bool = True,
        sort: str | None = None,
        ocr: str | None = None,
    ) -> list[Hit]:
        """Search by a description, an example image, a name, an indexed image, or a mix;
        or list the images that match ``where`` (no query).

        The same as :meth:`query` without the explanation; see it for the arguments.
        """
        return self.query(
            text,
            image=image,
            name=name,
            similar_to=similar_to,
            negatives=negatives,
            parts=parts,
            k=k,
            offset=offset,
            where=where,
            threshold=threshold,
            min_confidence=min_confidence,
            expand=expand,
            generate=generate,
            collapse_duplicates=collapse_duplicates,
            group=group,
            explain=False,
            sort=sort,
            ocr=ocr,
        ).hits

    def add_concept(self, name: str, images: Sequence[ExampleInput] | ExampleInput) -> Concept:
        """Register a name by example images (replacing a concept of the same name).

        Args:
            name: The name; name queries find it first.
            images: One to a few examples: paths, URLs, bytes, PIL images or indexed ids
                (``int`` or ``"id:N"``). Paths and URLs are read here.

        Raises:
            QueryError: No name, no examples, an unreadable image or an unknown id.
        """
        if isinstance(images, str | bytes | Path | Image.Image | int):
            images = [images]  # one example given bare
        examples = [example_body(example) for example in images]
        if not examples:
            raise QueryError(f"concept {name!r} needs at least one example image")
        return self.define_concept(name, ConceptRequest(examples=examples))


# -- turning Python values into the serialisable shapes -------------------------------------------


def build_request(
    text: str | None = None,
    *,
    image: ImageInput | None = None,
    name: str | None = None,
    similar_to: int | None = None,
    negatives: Sequence[QueryPart | str] | QueryPart | str = (),
    parts: Sequence[QueryPart] = (),
    k: int = 10,
    offset: int = 0,
    where: PayloadFilter | Sequence[str] | str | None = None,
    threshold: float | None = None,
    min_confidence: float | None = None,
    expand: bool | None = None,
    generate: bool | None = None,
    collapse_duplicates: bool | float = False,
    group: bool = True,
    explain: bool = False,
    sort: str | None = None,
    ocr: str | None = None,
) -> SearchRequest:
    """The :class:`SearchRequest` of a query given as Python values (see
    :meth:`CollectionClient.query`); example images are read into bytes here.

    Raises:
        QueryError: More than one main query, none at all, or an image that cannot be read.
    """
    main = [value for value in (text, image, name, similar_to) if value is not None]
    if len(main) > 1 or not (main or parts or where or ocr is not None):
        raise QueryError(NO_QUERY)
    if ocr is not None:
        query_words(ocr)  # refused here, in the words of a local client
    if sort is not None:
        sort_key(sort)  # refused here, in the words of a local client
    check_window(k, offset, collapse_duplicates)
    check_min_confidence(min_confidence)
    if isinstance(negatives, str | QueryPart):
        negatives = [negatives]  # one negative given bare, not its characters
    negative_texts: list[str] = []
    part_bodies = [part_body(part) for part in parts]
    for negative in negatives:
        if isinstance(negative, str):
            negative_texts.append(negative)
        else:
            part_bodies.append(part_body(negative, weight=-abs(negative.weight)))
    filters: list[str] = []
    if where is not None:
        # Parsed here, then written back: a bad filter fails before any request, and a
        # relative folder= is made absolute on the caller's machine, not on a server.
        if not isinstance(where, PayloadFilter):
            where = parse_filters([where] if isinstance(where, str) else where)
        filters = filter_expressions(where)
    try:
        return SearchRequest(
            text=text,
            name=name,
            image=image_text(image_bytes_of(image)) if image is not None else None,
            id=similar_to,
            negatives=negative_texts,
            parts=part_bodies,
            filters=filters,
            k=k,
            offset=offset,
            threshold=threshold,
            min_confidence=min_confidence,
            collapse_duplicates=collapse_duplicates,
            group=group,
            expand=expand,
            generate=generate,
            explain=explain,
            sort=sort,
            ocr=ocr,
        )
    except ValueError as exc:  # pydantic's ValidationError: a value out of its range
        raise QueryError(f"invalid query: {_first_error(exc)}") from exc


def check_window(k: int, offset: int, collapse_duplicates: bool | float) -> None:
    """Refuse a window or duplicate threshold out of range, in the engine's words (a local and
    a remote client then say the same).

    Raises:
        QueryError: ``k`` below 1, a negative ``offset``, a threshold outside (0, 1].
    """
    if k < 1:
        raise QueryError(f"k must be at least 1, not {k}")
    if offset < 0:
        raise QueryError(f"offset must not be negative, not {offset}")
    if not isinstance(collapse_duplicates, bool) and not 0.0 < collapse_duplicates <= 1.0:
        raise QueryError(f"a duplicate threshold lies in (0, 1], not {collapse_duplicates}")


def part_body(part: QueryPart, *, weight: float | None = None) -> QueryPartBody:
    """A query part in its serialisable shape (an image read into base64 here)."""
    value: Any = part.value
    if part.kind == "image":
        value = image_text(image_bytes_of(value))
    elif part.kind == "id":
        value = int(value)
    else:
        value = str(value)
    try:
        return QueryPartBody(
            kind=part.kind, value=value, weight=part.weight if weight is None else weight
        )
    except ValueError as exc:
        raise QueryError(f"invalid query part {part.describe()}: {_first_error(exc)}") from exc


def example_body(example: ExampleInput) -> ConceptExampleBody:
    """A concept's example in its serialisable shape: an id, or image bytes with a label."""
    if isinstance(example, int) and not isinstance(example, bool):
        return ConceptExampleBody(id=example)
    if isinstance(example, str) and example.startswith("id:") and example[3:].isdigit():
        return ConceptExampleBody(id=int(example[3:]))
    label = str(example) if isinstance(example, str | Path) else f"<{type(example).__name__}>"
    return ConceptExampleBody(image=image_text(image_bytes_of(example)), label=label)


def image_bytes_of(image: ImageInput) -> bytes:
    """The encoded bytes of an example image, read on this machine.

    Paths are read as regular files; http(s) URLs are downloaded (with a deadline and a size
    cap); PIL images are encoded as PNG.

    Raises:
        QueryError: The image cannot be read or downloaded.
    """
    if isinstance(image, bytes):
        if not image:
            raise QueryError("the example image is empty")
        return image
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    location = os.fspath(image)
    try:
        if location.lower().startswith(("http://", "https://")):
            return fetch_url(location, AccessPolicy())
        path = uri_path(location) if location.startswith("file://") else location
        if path is None:
            raise ImageDecodeError(location, "not a local file or an http(s) URL")
        return read_local_file(os.path.abspath(os.path.expanduser(path)), shown=location)
    except ImageDecodeError as exc:
        raise QueryError(f"cannot use the example image {exc.path}: {exc.reason}") from exc


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "")
    return str(exc)
