"""The Python client: one object that indexes and searches a collection.

The CLI and the HTTP API are thin shells over :class:`ImageSearch`::

    from indexer.config import Settings
    from search import ImageSearch

    with ImageSearch(Settings(store={"location": "/data/photos-index"})) as engine:
        engine.index("/data/photos")
        for hit in engine.search("a dog on a beach", k=5):
            print(hit.score, hit.uri)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

from indexer.access import AccessPolicy
from indexer.config import (
    ModelSettings,
    Runner,
    Settings,
    default_data_dir,
    model_for_collection,
    resolve_runner,
)
from indexer.embed import Embedder
from indexer.errors import ConfigError, QueryError
from indexer.indexing import IndexReport, index_source
from indexer.progress import ProgressCallback
from indexer.run_folders import run_folders
from indexer.stores.interface import PayloadFilter, StoreInfo, VectorStore
from indexer.stores.opening import open_store
from search.concepts import Concept
from search.duplicates import DuplicateGroup, find_duplicates
from search.engine import ExampleInput, Hit, ImageInput, SearchEngine, SearchResult
from search.filters import parse_filters
from search.knowledge import KnowledgeBase, OnlineDescriptions, load_knowledge_base
from search.query import QueryPart
from search.tagging import TagReport, count_tags, tag_images

PREFECT_QUIET_DEFAULTS = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
"""Environment defaults for the Prefect servers anyshot starts: no telemetry (which, offline,
fails its DNS lookup and prints a traceback). Values the user set are kept."""


def quiet_prefect_telemetry() -> None:
    """Turn Prefect's analytics off for this process and its children, unless the user chose.

    Call before importing prefect: its settings read the environment.
    """
    for name, value in PREFECT_QUIET_DEFAULTS.items():
        os.environ.setdefault(name, value)


class ImageSearch:
    """Index and search one collection.

    The store opens at once; the model loads on first use. Which model: the one named in
    ``settings.model`` when it was set explicitly (argument or ``ANYSHOT_MODEL__*``), otherwise
    the one that built the collection, otherwise the default.

    Args:
        settings: All settings; ``Settings()`` reads ``ANYSHOT_*`` variables.
        store: An already open store to use instead of ``settings.store``.
        embedder: An already loaded model to use instead of ``settings.model``.
        knowledge: Names with descriptions, instead of reading ``settings.search.knowledge_base``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
        knowledge: KnowledgeBase | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._knowledge = knowledge
        self._owns_store = store is None
        self.store = store if store is not None else open_store(self.settings.store)
        self._embedder = embedder
        self._engine: SearchEngine | None = None

    # -- parts ---------------------------------------------------------------------------------

    def model_settings(self) -> ModelSettings:
        """The model settings this client loads: explicit ones, else the collection's model."""
        stored = self.store.model()
        return model_for_collection(
            self.settings.model, stored and stored.name, stored and stored.pretrained
        )

    @property
    def embedder(self) -> Embedder:
        """The model, loaded on first use."""
        if self._embedder is None:
            self._embedder = Embedder(self.model_settings())
        return self._embedder

    @property
    def engine(self) -> SearchEngine:
        """The query engine (checks that store and model match)."""
        if self._engine is None:
            self.store.require_model()  # an empty store says so before a model loads
            self._engine = SearchEngine(
                self.store,
                self.embedder,
                self.settings.search,
                knowledge=self.knowledge,
                online=self._online_descriptions(),
            )
        return self._engine

    @property
    def knowledge(self) -> KnowledgeBase | None:
        """The knowledge base: given, else read from ``search.knowledge_base`` once."""
        if self._knowledge is None and self.settings.search.knowledge_base is not None:
            self._knowledge = load_knowledge_base(self.settings.search.knowledge_base)
        return self._knowledge

    def _online_descriptions(self) -> OnlineDescriptions | None:
        search = self.settings.search
        if not search.online_descriptions:
            return None
        cache = search.online_cache_dir or default_data_dir() / "descriptions"
        return OnlineDescriptions(search.online_url, cache, timeout=search.online_timeout)

    def parquet_dir(self) -> Path | None:
        """Where Parquet shards go: the setting, else ``parquet/`` inside a folder store."""
        return run_folders(self.settings).parquet_dir

    def state_dir(self) -> Path | None:
        """Where index runs keep their state (skipped files)."""
        return run_folders(self.settings).state_dir

    # -- operations ----------------------------------------------------------------------------

    def index(
        self,
        source: str | Path,
        *,
        runner: Runner = "inline",
        dask_address: str | None = None,
        dask_workers: int = 2,
        progress: ProgressCallback | None = None,
        access: AccessPolicy | None = None,
    ) -> IndexReport:
        """Index a folder, a list file (text or Parquet) or one image.

        Args:
            source: What to index.
            runner: ``inline`` (this process, no orchestration), ``prefect`` (the Prefect flow,
                decoding in worker processes), ``dask`` (the flow's batches on a Dask cluster),
                or ``auto`` (``prefect`` when ``PREFECT_API_URL`` is set, else ``inline``).
            dask_address: Scheduler address of an existing Dask cluster (runner ``dask``);
                None: ``index.dask_address``, else a local cluster.
            dask_workers: Worker processes of a local Dask cluster when no address is given.
            progress: Called as ``progress(done, total)`` as batches are done.
            access: What the run may read (a server's roots, URL policy); None: anything this
                process can read (:meth:`AccessPolicy.for_index`). A narrower policy needs
                the inline runner (a flow reads as the person who started it).

        Returns:
            Counts of indexed, unchanged, removed and skipped images, the problems met, and
            the time taken.

        Raises:
            SourceError: The source is missing or unreadable, or the run would remove every
                stored image of a folder that now holds none (``index.prune`` allows it).
            ConfigError: A narrower ``access`` with a flow runner.
        """
        runner = resolve_runner(runner)
        if runner != "inline":
            if access is not None and access != AccessPolicy.for_index(self.settings.index):
                raise ConfigError(f"runner {runner!r} cannot index under a narrower access policy")
            return self._index_with_flow(str(source), runner, dask_address, dask_workers, progress)
        report = index_source(
            source,
            embedder=self.embedder,
            store=self.store,
            settings=self.settings.index,
            parquet_dir=self.parquet_dir(),
            state_dir=self.state_dir(),
            progress=progress,
            access=access,
            reserve_free_mb=self.settings.store.reserve_free_mb,
        )
        self._engine = None
        return report

    def _index_with_flow(
        self,
        source: str,
        runner: Runner,
        dask_address: str | None,
        dask_workers: int,
        progress: ProgressCallback | None,
    ) -> IndexReport:
        quiet_prefect_telemetry()  # before prefect is imported, for its temporary servers
        from pipelines.index_flow import run_index_flow

        # The flow opens the store itself; an embedded store allows one opener at a time.
        self._release_store()
        try:
            result = run_index_flow(
                source,
                self.settings,  # whole: collection, credentials, layout, device, ...
                runner=runner,
                dask_address=dask_address,
                dask_workers=dask_workers,
                progress=progress,
            )
        finally:
            self.store = open_store(self.settings.store)
        return IndexReport.from_dict(result)

    def _release_store(self) -> None:
        if not self._owns_store:
            raise ConfigError("a flow runner needs a client that opened its own store")
        self.store.close()
        self._engine = None

    def search(
        self,
        text: str | None = None,
        *,
        image: ImageInput | None = None,
        name: str | None = None,
        similar_to: int | None = None,
        negatives: Sequence[QueryPart | str] = (),
        parts: Sequence[QueryPart] = (),
        k: int = 10,
        offset: int = 0,
        where: PayloadFilter | Sequence[str] | None = None,
        threshold: float | None = None,
        expand: bool | None = None,
        collapse_duplicates: bool | float = False,
    ) -> list[Hit]:
        """Search by a description, an example image, a name, an indexed image, or a mix.

        At most one of ``text``, ``image``, ``name`` and ``similar_to`` is given; ``parts`` add
        more (a combined query), ``negatives`` push results away. See :meth:`query`.

        Raises:
            QueryError: No query, an empty text, an unreadable image, an unknown id or name.
            StoreNotFoundError: Nothing was indexed yet.
            ModelMismatchError: The collection was built by another model.
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
            expand=expand,
            collapse_duplicates=collapse_duplicates,
        ).hits

    def query(
        self,
        text: str | None = None,
        *,
        image: ImageInput | None = None,
        name: str | None = None,
        similar_to: int | None = None,
        negatives: Sequence[QueryPart | str] = (),
        parts: Sequence[QueryPart] = (),
        k: int = 10,
        offset: int = 0,
        where: PayloadFilter | Sequence[str] | None = None,
        threshold: float | None = None,
        expand: bool | None = None,
        collapse_duplicates: bool | float = False,
    ) -> SearchResult:
        """Search, and say how the query was answered (``SearchResult.explain``).

        Args:
            text: A description (zero-shot).
            image: An example image: path, http(s) URL, bytes or PIL image (one-shot).
            name: A name: a registered concept, a knowledge-base entry, or prompt templates.
            similar_to: The id of an indexed image ("more like this").
            negatives: Parts to move away from; plain strings are texts. A part's weight
                counts as negative whatever its sign.
            parts: Weighted parts (:class:`QueryPart`, e.g. from :func:`parse_query`), alone
                or beside one of the four above (which then counts as a part of weight 1).
            k: How many hits.
            offset: How many of the best hits to skip (pagination).
            where: A :class:`PayloadFilter`, or filter expressions (:func:`parse_filters`).
            threshold: Minimum score on the query's own scale (text↔image for texts and
                names, image↔image for images, ids and concepts; see ``explain``).
            expand: Visual query expansion for text and name queries; None: the setting.
            collapse_duplicates: Keep only the best of near-duplicate hits (True: the
                setting's threshold; a float: that image↔image threshold).

        Returns:
            Hits (best first) and ``explain``.
        """
        query_parts = [
            QueryPart(kind, value)
            for kind, value in (
                ("text", text),
                ("image", image),
                ("name", name),
                ("id", similar_to),
            )
            if value is not None
        ]
        if len(query_parts) > 1 or not (query_parts or parts):
            raise QueryError(
                "give exactly one query: a text, an image, a name, or an indexed image's id "
                "(combine several as parts)"
            )
        query_parts += list(parts)
        if isinstance(negatives, str | QueryPart):
            negatives = [negatives]  # one negative given bare, not its characters
        for negative in negatives:
            part = QueryPart("text", negative) if isinstance(negative, str) else negative
            query_parts.append(QueryPart(part.kind, part.value, -abs(part.weight)))
        if where is not None and not isinstance(where, PayloadFilter):
            where = parse_filters([where] if isinstance(where, str) else where)
        return self.engine.query(
            query_parts,
            k=k,
            offset=offset,
            where=where,
            threshold=threshold,
            expand=expand,
            collapse_duplicates=collapse_duplicates,
        )

    # -- concepts ------------------------------------------------------------------------------

    def add_concept(self, name: str, images: Sequence[ExampleInput]) -> Concept:
        """Register a name by example images (replacing a concept of the same name).

        Args:
            name: The name; name queries find it first.
            images: One to a few examples: paths, URLs, bytes, PIL images or indexed ids
                (``int`` or ``"id:N"``).

        Raises:
            QueryError: No name, no examples, an unreadable image or an unknown id.
        """
        name = name.strip() if isinstance(name, str) else ""
        if not name:
            raise QueryError("a concept needs a name")
        if isinstance(images, str | bytes | Path | Image.Image | int):
            images = [images]  # one example given bare
        images = list(images)
        if not images:
            raise QueryError(f"concept {name!r} needs at least one example image")
        embedded = [self.engine.embed_example(example) for example in images]
        concept = Concept(
            name=name,
            examples=[label for _, label in embedded],
            created=time.time(),
            vectors=np.stack([vector for vector, _ in embedded]),
        )
        self.engine.concepts.add(concept)
        return concept

    def concepts(self) -> list[Concept]:
        """The registered concepts, by name."""
        return self.engine.concepts.list()

    def remove_concept(self, name: str) -> None:
        """Forget a concept.

        Raises:
            QueryError: No concept has that name.
        """
        self.engine.concepts.remove(name)

    # -- tags and duplicates -------------------------------------------------------------------

    def tag(
        self,
        labels: Sequence[str],
        *,
        top: int = 1,
        min_score: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> TagReport:
        """Tag every image with its best labels (zero-shot), in the payload key ``tags``.

        Args:
            labels: The labels to choose from (see :func:`search.tagging.read_labels`).
            top: How many labels an image may get.
            min_score: Minimum probability (softmax over the labels) of a tag.
            progress: Called as ``progress(done, total)``.

        Returns:
            Counts of images and tags.
        """
        return tag_images(self.engine, labels, top=top, min_score=min_score, progress=progress)

    def tag_counts(self) -> dict[str, int]:
        """Images per tag, most frequent first."""
        return count_tags(self.engine)

    def duplicates(
        self, *, threshold: float | None = None, progress: ProgressCallback | None = None
    ) -> list[DuplicateGroup]:
        """Groups of near-duplicate images over the whole collection (through the index).

        Args:
            threshold: Image↔image cosine similarity; None: ``search.duplicate_threshold``.
            progress: Called as ``progress(done, total)``.
        """
        self.store.require_model()
        return find_duplicates(
            self.store,
            threshold=self.settings.search.duplicate_threshold if threshold is None else threshold,
            neighbours=self.settings.search.duplicate_neighbours,
            progress=progress,
        )

    def info(self) -> StoreInfo:
        """What the collection holds."""
        return self.store.info()

    def close(self) -> None:
        """Close the store (if this client opened it)."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
