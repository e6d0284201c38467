"""The local face: a collection opened in this process (a store folder, a Qdrant server URL or
``:memory:``)::

    from indexer.config import Settings
    from search import ImageSearch

    with ImageSearch(Settings(store={"location": "/data/photos-index"})) as engine:
        engine.index("/data/photos")
        for hit in engine.search("a dog on a beach", k=5):
            print(hit.score, hit.uri)

:class:`ImageSearch` implements :class:`search.face.CollectionClient`, the interface the CLI,
the HTTP API and :func:`search.connect` share. The model (torch), the query engine and tagging
are imported when first used: ``import search.client`` and ``ImageSearch(settings).info()``
load no model.

Beyond the face it offers what a server needs instead of reaching into the store:
:meth:`ImageSearch.for_server` (the store held for the whole run, its calls serialised between
threads), payloads by id, a search by a raw vector (clip-back), the trusted roots, and a
snapshot in parts (:mod:`search.snapshot_parts`). Requests' example images go through an
:class:`~search.request_parts.ExampleReader`: a local caller's are read as that caller, a
server's through its own bounded reader (:mod:`search.serving.example_images`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.access import AccessPolicy
from indexer.config import (
    ModelSettings,
    Runner,
    Settings,
    default_data_dir,
    model_for_collection,
    resolve_runner,
)
from indexer.errors import BusyError, ConfigError, QueryError, StoreNotFoundError
from indexer.precision_record import describe_precisions
from indexer.progress import ProgressCallback
from indexer.run_folders import run_folders
from indexer.schema import ModelIdentity, is_point_id
from indexer.snapshot_documents import MAX_CONCEPTS, MAX_DOCUMENTS_BYTES, snapshot_content
from indexer.stores.interface import PayloadFilter, VectorStore
from indexer.stores.location import StoreLocation
from indexer.stores.opening import open_store
from indexer.trusted_roots import TRUSTED_ROOTS_DOCUMENT, read_trusted_roots
from search import snapshot_parts
from search.concepts import Concept, ConceptRegistry
from search.confidence import no_confidence
from search.duplicates import find_duplicates
from search.face import CollectionClient, CollectionInfo
from search.filters import parse_filters
from search.knowledge import KnowledgeBase, OnlineDescriptions, load_knowledge_base, normalise_name
from search.listing import is_listing, list_images, sort_hits
from search.messages import ConceptExampleBody, ConceptRequest, InfoBody, SearchRequest, image_bytes
from search.request_parts import (
    IMAGE_BYTES_LIMIT,
    CallerExamples,
    ExampleReader,
    NoExamples,
    printable,
    refuse_control_characters,
    request_parts,
)
from search.results import DuplicateGroup, Hit, SearchResult, TagReport
from search.text_search import SemanticSearch, search_text_inside

if TYPE_CHECKING:
    from indexer.embed import Embedder
    from indexer.image_onnx import ImagePrecision, OnnxImageModel
    from indexer.indexing import IndexReport
    from indexer.query_model import QueryModel
    from indexer.text_onnx import OnnxTextTower, TextTowerKey
    from indexer.transfer import LoadReport
    from search.engine import SearchEngine
    from search.snapshot_parts import ShardPage

logger = logging.getLogger(__name__)

PREFECT_QUIET_DEFAULTS = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
"""Environment defaults for the Prefect servers anyshot starts: no telemetry (which, offline,
fails its DNS lookup and prints a traceback). Values the user set are kept."""

CONCEPT_FLOATS_LIMIT = MAX_DOCUMENTS_BYTES // 24
"""Example-vector numbers all concepts together may hold: about what a snapshot's documents file
(at most :data:`~indexer.snapshot_documents.MAX_DOCUMENTS_BYTES`) carries as JSON."""


def quiet_prefect_telemetry() -> None:
    """Turn Prefect's analytics off for this process and its children, unless the user chose.

    Call before importing prefect: its settings read the environment.
    """
    for name, value in PREFECT_QUIET_DEFAULTS.items():
        os.environ.setdefault(name, value)


class ImageSearch(CollectionClient):
    """Index and search one collection in this process.

    The store opens at once; the model loads on first use. Which model: the one named in
    ``settings.model`` when it was set explicitly (argument or ``ANYSHOT_MODEL__*``), otherwise
    the one that built the collection, otherwise the default.

    Args:
        settings: All settings; ``Settings()`` reads ``ANYSHOT_*`` variables.
        store: An already open store to use instead of ``settings.store`` (not closed here).
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
        self.location = self.settings.store.location
        self._knowledge = knowledge
        self._owns_store = store is None
        self.store = store if store is not None else open_store(self.settings.store)
        self._embedder = embedder
        self._engine: SearchEngine | None = None
        self._text_tower_due = False  # the collection's text tower is not exported yet
        self._image_tower_due = False  # the cached image tower was unusable
        self._text_tower_wanted = False  # ... and a text query ran on the torch model
        self._export_warned = False
        self._lock = threading.RLock()  # the engine is built once, whatever thread asks first
        self._writing = threading.Lock()  # one collection-wide write (index, tag, load) at a time
        self._examples: ExampleReader = CallerExamples()
        self._serving = False  # a server's client: flow runners and default readers refused
        self._advertised: Path | None = None

    @classmethod
    def for_server(cls, settings: Settings, *, advertise_url: str | None = None) -> ImageSearch:
        """The client of a server: the store held for the whole run (an empty folder too, which
        the server will index into), its calls serialised so that requests and an index run
        can share it from several threads.

        Requests' example images must come through the server's own reader (``examples=``):
        this client reads no file and fetches no URL for a request by itself.

        Args:
            settings: The server's settings.
            advertise_url: The URL the server is reached at; with a store folder it is written
                to ``STORE/server.json`` (removed by :meth:`close`), so that others who find
                the store held hand their work to the server.

        Raises:
            StoreServedError: Another server holds the store folder.
            StoreLockedError: Another process has the store folder open.
        """
        from indexer.stores.holder import advertise_server
        from indexer.stores.serialized import SerializedStore

        store = SerializedStore(open_store(settings.store, hold=True))
        client = cls(settings, store=store)
        client._owns_store = True
        client._serving = True
        client._examples = NoExamples()
        folder = StoreLocation.parse(settings.store.location).folder
        if advertise_url is not None and folder is not None:
            try:
                advertise_server(folder, advertise_url)
            except OSError as exc:
                client.close()
                raise ConfigError(f"cannot write server.json in {folder}: {exc}") from exc
            client._advertised = folder
        return client

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
        with self._lock:
            if self._embedder is None:
                from indexer.embed import Embedder

                self._embedder = Embedder(self.model_settings())
            return self._embedder

    @property
    def engine(self) -> SearchEngine:
        """The query engine (checks that store and model match)."""
        with self._lock:
            if self._engine is None:
                from search.engine import SearchEngine

                self.store.require_model()  # an empty store says so before a model loads
                self._engine = SearchEngine(
                    self.store,
                    self._query_model(),
                    self.settings.search,
                    knowledge=self.knowledge,
                    online=self._online_descriptions(),
                )
            return self._engine

    def _query_model(self) -> Embedder | QueryModel:
        """What queries embed with: the model when it is loaded; else, when text queries go
        through ONNX (``model.text_runtime``), the collection's exported text tower, with the
        model loaded on the first image; else the model.

        Raises:
            ModelError: ``text_runtime`` is ``onnx`` and the tower cannot be exported.
        """
        if self._embedder is not None:
            return self._embedder
        from indexer.query_model import QueryModel, find_text_tower, onnx_text_wanted

        settings = self.model_settings()
        if not onnx_text_wanted(settings):
            return self.embedder
        collection = self.store.require_model()
        key, tower = find_text_tower(settings, collection)
        if tower is None and settings.text_runtime == "onnx":
            tower = self._export_text_tower_now(settings, collection, key)
        if tower is None:
            self._text_tower_due = key is not None
            return self.embedder
        texts_per_pass = settings.batch_size if isinstance(settings.batch_size, int) else 64
        return QueryModel(tower, lambda: self.embedder, batch_size=texts_per_pass)

    def _export_text_tower_now(
        self, settings: ModelSettings, collection: ModelIdentity, key: TextTowerKey | None
    ) -> OnnxTextTower:
        """``text_runtime=onnx`` with no cached tower: export it now, or say why not."""
        from indexer.errors import ModelError
        from indexer.text_onnx import load_text_tower

        if key is None:
            why = (
                "it has no local weights file to fingerprint"
                if collection.fingerprint is None
                else f"the model settings name other weights than {collection.label}'s"
            )
            raise ModelError(
                f"text_runtime is onnx, but {collection.label}'s text tower cannot be exported: "
                f"{why} (use ANYSHOT_MODEL__TEXT_RUNTIME=auto or torch)"
            )
        from indexer.text_onnx_export import export_text_tower

        try:
            export_text_tower(self.embedder, settings, key.precision)
            tower = load_text_tower(settings, key, threads=settings.threads)
        except OSError as exc:
            raise ModelError(f"cannot write the exported text tower: {exc}") from exc
        if tower is None:  # pragma: no cover - the export has just written it
            raise ModelError(f"the exported text tower of {collection.label} is missing")
        return tower

    def export_text_tower(self) -> Path | None:
        """Export the loaded model's text tower for ONNX text queries, if it is missing.

        Called after an index run and, for a text query that had to load the model, when the
        client closes. Never raises: a model that cannot be exported keeps the torch path (a
        warning says why, once).

        Returns:
            The cached file (made now or before); None when none was made.
        """
        embedder = self._embedder
        if embedder is None or embedder.identity.fingerprint is None:
            return None
        from indexer.query_model import onnx_text_wanted
        from indexer.text_onnx import TextTowerKey, text_precision, text_tower_path

        settings = embedder.settings
        if not onnx_text_wanted(settings):
            return None
        key = TextTowerKey.for_identity(embedder.identity, text_precision(settings))
        target = text_tower_path(settings, key)
        if target.is_file() and not self._text_tower_due:
            return target

        def export() -> Path:
            from indexer.text_onnx_export import export_text_tower

            return export_text_tower(embedder, settings, key.precision)

        made = self._export_once(target, export, "text", embedder.identity)
        if made is not None:
            self._text_tower_due = False
        return made

    def export_image_tower(self) -> Path | None:
        """Export the loaded model's image tower for index runs without torch, if it is
        missing and the model's images would run on ONNX (``model.image_runtime``: a CPU
        model in int8 or fp32). Called after an index run on torch; never raises.

        Returns:
            The cached file (made now or before); None when none was made.
        """
        embedder = self._embedder
        if embedder is None or embedder.identity.fingerprint is None:
            return None
        from indexer.image_onnx import image_tower_key, image_tower_path, onnx_image_precision

        settings = embedder.settings
        precision = onnx_image_precision(settings)
        if precision is None:
            return None
        target = image_tower_path(settings, image_tower_key(settings, precision))
        if target.is_file() and not self._image_tower_due:
            return target

        def export() -> Path:
            from indexer.image_onnx_export import export_image_tower

            return export_image_tower(embedder, settings, precision)

        made = self._export_once(target, export, "image", embedder.identity)
        if made is not None:
            self._image_tower_due = False
        return made

    def _export_once(
        self, target: Path, export: Callable[[], Path], tower: str, identity: ModelIdentity
    ) -> Path | None:
        """Run the export of a ``text`` or ``image`` tower unless one failed before (a
        ``.failed`` note beside ``target`` says why; removing it tries again); a failure is
        logged once and noted, never raised."""
        from indexer.export_cache import failure_note

        failed = failure_note(target)
        if failed.is_file():
            return None
        try:
            return export()
        except Exception as exc:  # an export must never fail a search or an index run
            if not self._export_warned:
                self._export_warned = True
                logger.warning(
                    "%s of %s stay on torch: cannot export its %s tower: %s "
                    "(not tried again while %s exists)",
                    "text queries" if tower == "text" else "index runs",
                    identity.label,
                    tower,
                    exc,
                    failed,
                )
            with contextlib.suppress(OSError):
                failed.parent.mkdir(parents=True, exist_ok=True)
                failed.write_text(f"{type(exc).__name__}: {exc}\n")
            return None

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

    def _forget_engine(self) -> None:
        """Build the engine again on next use (the collection's model may have changed)."""
        with self._lock:
            self._engine = None

    def parquet_dir(self) -> Path | None:
        """Where Parquet shards go: the setting, else ``parquet/`` inside a folder store."""
        return run_folders(self.settings).parquet_dir

    def state_dir(self) -> Path | None:
        """Where index runs keep their state (skipped files)."""
        return run_folders(self.settings).state_dir

    @contextlib.contextmanager
    def _exclusive(self, what: str, *, wait: bool = False) -> Iterator[None]:
        """Hold the collection for a write that goes over all of it (an index run, tagging, a
        load): two at once would overwrite each other's points.

        Raises:
            BusyError: Another such write is running and ``wait`` is off.
        """
        if not self._writing.acquire(blocking=wait):
            raise BusyError(
                f"cannot start {what}: the collection is being written (an index run, tagging "
                "or a load); try again when it is done"
            )
        try:
            yield
        finally:
            self._writing.release()

    # -- indexing ------------------------------------------------------------------------------

    def index(
        self,
        source: str | Path,
        *,
        runner: Runner = "auto",
        progress: ProgressCallback | None = None,
        dask_address: str | None = None,
        dask_workers: int | None = None,
        access: AccessPolicy | None = None,
    ) -> IndexReport:
        """Index a folder, a list file (text or Parquet) or one image.

        Args:
            source: What to index.
            runner: ``inline`` (this process, no orchestration), ``prefect`` (the Prefect flow,
                decoding in worker processes), ``dask`` (the flow's batches on a Dask cluster),
                or ``auto`` (``prefect`` when ``PREFECT_API_URL`` is set, else ``inline``).
            progress: Called as ``progress(done, total)`` as batches are done.
            dask_address: Scheduler address of an existing Dask cluster (runner ``dask``);
                None: ``index.dask_address``, else a local cluster.
            dask_workers: Worker processes of a local Dask cluster when no address is given;
                None: ``index.dask_workers``.
            access: What the run may read (a server's roots, URL policy); None: anything this
                process can read (:meth:`AccessPolicy.for_index`). A narrower policy needs
                the inline runner (a flow reads as the person who started it).

        Returns:
            Counts of indexed, unchanged, removed and skipped images, the problems met, and
            the time taken.

        Raises:
            SourceError: The source is missing or unreadable, or the run would remove every
                stored image of a folder that now holds none (``index.prune`` allows it).
            ConfigError: A flow runner with a narrower ``access``, on a ``:memory:`` store, or
                on a client that did not open its store itself (a server's).
        """
        from indexer.indexing import index_source

        runner = resolve_runner(runner)
        if runner != "inline":
            self._check_flow_runner(runner, access)
            with self._exclusive("an index run", wait=True):
                return self._index_with_flow(
                    str(source), runner, dask_address, dask_workers, progress
                )
        with self._exclusive("an index run", wait=True):
            report = index_source(
                source,
                embedder=self._index_model(),
                store=self.store,
                settings=self.settings.index,
                parquet_dir=self.parquet_dir(),
                state_dir=self.state_dir(),
                progress=progress,
                access=access,
                reserve_free_mb=self.settings.store.reserve_free_mb,
            )
        self._forget_engine()
        # The next run and the next text query then need no torch.
        self.export_text_tower()
        self.export_image_tower()
        return report

    def _index_model(self) -> Embedder | OnnxImageModel:
        """What an inline index run embeds images with: the model when it is loaded; else,
        when images run on ONNX (``model.image_runtime``), the cached export of the image
        tower; else the model (whose image tower is exported after the run)."""
        settings = self.model_settings()
        if self._embedder is not None and settings.image_runtime != "onnx":
            return self._embedder
        from indexer.image_onnx import find_image_tower, onnx_image_precision

        precision = onnx_image_precision(settings)
        if precision is None:
            if settings.image_runtime == "onnx":
                raise ConfigError(
                    "image_runtime is onnx, but this model runs on CUDA or in bf16/fp16: "
                    "ONNX image towers run fp32 or int8 on the CPU"
                )
            return self.embedder
        tower = find_image_tower(settings, precision)
        if tower is None and settings.image_runtime == "onnx":
            made = self._export_image_tower_now(settings, precision)
            tower = find_image_tower(settings, precision) if made else None
        if tower is None:
            self._image_tower_due = True
            return self.embedder
        return tower

    def _export_image_tower_now(self, settings: ModelSettings, precision: ImagePrecision) -> Path:
        """``image_runtime=onnx`` with no usable cached tower: export it now, or say why not.

        Raises:
            ModelError: The tower cannot be exported.
        """
        from indexer.errors import ModelError
        from indexer.image_onnx_export import export_image_tower

        try:
            return export_image_tower(self.embedder, settings, precision)
        except OSError as exc:
            raise ModelError(f"cannot write the exported image tower: {exc}") from exc

    def _check_flow_runner(self, runner: Runner, access: AccessPolicy | None) -> None:
        if access is not None and access != AccessPolicy.for_index(self.settings.index):
            raise ConfigError(f"runner {runner!r} cannot index under a narrower access policy")
        if StoreLocation.parse(self.settings.store.location).is_memory:
            raise ConfigError(
                f"runner {runner!r} cannot index a :memory: store: the flow would index into "
                "an in-memory store of its own, gone when it ends (use runner inline)"
            )
        if not self._owns_store or self._serving:
            raise ConfigError(f"runner {runner!r} needs a client that opened its own store")

    def _index_with_flow(
        self,
        source: str,
        runner: Runner,
        dask_address: str | None,
        dask_workers: int | None,
        progress: ProgressCallback | None,
    ) -> IndexReport:
        from indexer.indexing import IndexReport

        quiet_prefect_telemetry()  # before prefect is imported, for its temporary servers
        from pipelines.index_flow import run_index_flow

        # The flow opens the store itself; an embedded store allows one opener at a time.
        self.store.close()
        self._forget_engine()
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

    # -- searching -----------------------------------------------------------------------------

    def answer(
        self, request: SearchRequest, *, examples: ExampleReader | None = None
    ) -> SearchResult:
        """Answer one search in its serialisable shape (what :meth:`query` builds).

        Args:
            request: The query.
            examples: How to read its example images (base64 bytes, URLs); None: as the
                caller of this process (:class:`~search.request_parts.CallerExamples`); a
                server gives its own.

        Returns:
            Hits (best first); ``explain`` only when the request asks for it.

        Raises:
            QueryError: No query or more than one main query, an empty text, an unreadable
                image, an unknown id or name, a bad filter.
            StoreNotFoundError: Nothing was indexed yet.
            ModelMismatchError: The collection was built by another model.
            BusyError: A server's reader is at its limit of downloads or decodes.
        """
        where = parse_filters(request.filters) if request.filters else None
        if request.ocr is not None:
            return self._answer_text_inside(request, where, examples)
        if is_listing(request):  # filters alone: no model needed
            listed = list_images(
                self.store,
                where or PayloadFilter(),
                k=request.k,
                offset=request.offset,
                sort=request.sort,
            )
            if not request.explain:
                return SearchResult(listed.hits)
            return SearchResult(listed.hits, no_confidence(listed.explain))
        reader = examples or self._examples
        engine = self.engine  # an empty store or another model says so before images are read
        parts = request_parts(request, reader, engine.embedder.image_size)
        result = engine.query(
            parts,
            k=request.k,
            offset=request.offset,
            where=where,
            threshold=request.threshold,
            min_confidence=request.min_confidence,
            expand=request.expand,
            generate=request.generate,
            collapse_duplicates=request.collapse_duplicates,
            group=request.group,
        )
        if request.sort is not None:
            result = SearchResult(sort_hits(result.hits, request.sort), result.explain)
        if self._text_tower_due and any(part.kind in {"text", "name"} for part in parts):
            self._text_tower_wanted = True  # exported on close, after the answer is out
        return result if request.explain else SearchResult(result.hits)

    def _answer_text_inside(
        self,
        request: SearchRequest,
        where: PayloadFilter | None,
        examples: ExampleReader | None,
    ) -> SearchResult:
        """A search by the text inside images (``request.ocr``), with its other query, if any,
        ranking equal matches (:mod:`search.text_search`)."""
        assert request.ocr is not None
        semantic: SemanticSearch | None = None
        if not is_listing(request):
            engine = self.engine
            parts = request_parts(request, examples or self._examples, engine.embedder.image_size)

            def semantic(scope: PayloadFilter, k: int) -> list[Hit]:
                return engine.query(
                    parts,
                    k=k,
                    where=scope,
                    threshold=request.threshold,
                    min_confidence=0.0,  # the text inside decides; no confidence is applied
                    expand=request.expand,
                    generate=request.generate,
                    collapse_duplicates=request.collapse_duplicates,
                    group=False,  # the text search matches points, frames included
                ).hits

        result = search_text_inside(
            self.store,
            request.ocr,
            where=where,
            k=request.k,
            offset=request.offset,
            semantic=semantic,
        )
        if request.sort is not None:
            result = SearchResult(sort_hits(result.hits, request.sort), result.explain)
        if not request.explain:
            return SearchResult(result.hits)
        return SearchResult(result.hits, no_confidence(result.explain))

    def search_vector(self, vector: Sequence[float] | np.ndarray, *, k: int = 10) -> list[Hit]:
        """The ``k`` images nearest to a raw embedding (clip-back's ``embedding_input``).

        Raises:
            QueryError: Not the collection's dimension, not finite, or all zeros.
        """
        array = np.asarray(vector, dtype=np.float32)
        dim = self.store.require_model().dim
        finite = array.shape == (dim,) and bool(np.isfinite(array).all())
        norm = float(np.linalg.norm(array)) if finite else 0.0
        if not finite or norm == 0.0 or not np.isfinite(norm):
            raise QueryError(f"the vector must be {dim} finite numbers, not all zero")
        return self.engine.search_vector(array / norm, k=k)

    def payload(self, point_id: int) -> dict[str, Any]:
        """What is stored with an indexed image (uri, size, sha256, tags, ...).

        Raises:
            StoreNotFoundError: No image with that id.
        """
        found = self.payloads([point_id])
        if point_id not in found:
            raise StoreNotFoundError(f"no image with id {point_id} in the collection")
        return found[point_id]

    def payloads(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The payloads of the indexed images among ``ids``, in the order asked (others are
        left out)."""
        wanted = [int(i) for i in ids if is_point_id(int(i))]
        return {point.id: point.payload for point in self.store.retrieve(wanted)}

    # -- concepts ------------------------------------------------------------------------------

    def define_concept(
        self, name: str, request: ConceptRequest, *, examples: ExampleReader | None = None
    ) -> Concept:
        """Register ``name`` from examples in their serialisable shape (see :meth:`add_concept`).

        Args:
            name: The name (case and spaces aside, it replaces a concept of the same name).
            request: The examples: base64 images with labels, or indexed images' ids.
            examples: How to decode the images; None: as :meth:`answer`'s default.

        Raises:
            QueryError: No name, an example that is neither an image nor an id, an unreadable
                image, an unknown id, or more concepts than a snapshot can carry.
        """
        name = name.strip() if isinstance(name, str) else ""
        if not name:
            raise QueryError("a concept needs a name")
        refuse_control_characters(name, "a concept's name")
        reader = examples or self._examples
        engine = self.engine
        embedded = [self._embed_example(engine, example, reader) for example in request.examples]
        concept = Concept(
            name=name,
            examples=[label for _, label in embedded],
            created=time.time(),
            vectors=np.stack([vector for vector, _ in embedded]),
        )
        with self._lock:
            check_concept_room(engine.concepts.list(), concept)
            engine.concepts.add(concept)
        return concept

    @staticmethod
    def _embed_example(
        engine: SearchEngine, example: ConceptExampleBody, reader: ExampleReader
    ) -> tuple[np.ndarray, str]:
        if (example.id is None) == (example.image is None):
            raise QueryError("each example of a concept is an image or an indexed image's id")
        if example.id is not None:
            return engine.stored_vectors([example.id])[0], f"id:{example.id}"
        assert example.image is not None
        label = printable(example.label or "<bytes>")
        shown = f"the example image {example.label}" if example.label else "the example image"
        data = image_bytes(example.image, IMAGE_BYTES_LIMIT)
        return engine.embed_image(reader.image(data, shown, engine.embedder.image_size)), label

    def concepts(self) -> list[Concept]:
        """The registered concepts, by name (no model is loaded).

        Raises:
            StoreNotFoundError: Nothing was indexed yet.
        """
        self.store.require_model()
        return ConceptRegistry(self.store).list()

    def remove_concept(self, name: str) -> None:
        """Forget a concept.

        Raises:
            QueryError: No concept has that name.
        """
        with self._lock:
            ConceptRegistry(self.store).remove(name)

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

        Raises:
            BusyError: An index run, a load or another tagging run is writing the collection.
        """
        from search.tagging import tag_images

        for label in labels:
            refuse_control_characters(str(label), "a label")
        engine = self.engine
        with self._exclusive("tagging"):
            return tag_images(engine, labels, top=top, min_score=min_score, progress=progress)

    def train_generator(
        self,
        *,
        captions: str | Path | None = None,
        kind: str | None = None,
        epochs: int | None = None,
    ) -> dict[str, Any]:
        """Train the collection's generator of visual features from its captioned images and
        keep it with the collection (:mod:`indexer.generator_train` says where captions come
        from).

        Args:
            captions: A CSV, TSV or Parquet file of (image, caption) pairs.
            kind: ``gan`` (the default, best measured) or ``mlp``.
            epochs: Passes over the pairs (default 60).

        Returns:
            The report: ``pairs``, ``images``, ``seconds``, ``kind``, ``epochs``, ``loss``,
            ``sources``, ``skipped``, ``model``, ``file``.

        Raises:
            QueryError: Fewer than 20 captioned images.
            ConfigError: The captions file cannot be read.
            BusyError: Another run is writing the collection.
        """
        from indexer.generator_train import DEFAULT_KIND, TrainOptions, train_store_generator

        options = TrainOptions(
            kind=kind or DEFAULT_KIND,  # type: ignore[arg-type]
            epochs=epochs or TrainOptions.epochs,
            threads=self.settings.model.threads,
        )
        self.store.require_model()  # an empty store says so before a model loads
        embedder = self.embedder
        with self._exclusive("training the generator"):
            report = train_store_generator(
                self.store,
                embedder.embed_texts,
                embedder.identity,
                captions_file=captions,
                options=options,
            )
        with self._lock:
            if self._engine is not None:
                self._engine.forget_generator()
        return report.to_dict()

    def tag_counts(self) -> dict[str, int]:
        """Images per tag, most frequent first (no model is loaded)."""
        self.store.require_model()
        counts: Counter[str] = Counter()
        for point in self.store.scroll(batch_size=4096):
            counts.update(str(tag) for tag in point.payload.get("tags") or [])
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

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

    # -- the collection ------------------------------------------------------------------------

    def info(self) -> CollectionInfo:
        """What the collection holds: the object ``anyshot info --json`` prints (no model is
        loaded)."""
        details = self.store.info()
        base: dict[str, Any] = {
            "collection": self.settings.store.collection,
            "location": details.location,
            "backend": details.backend,
            "model": details.model.to_dict() if details.model else None,
            "points": details.points,
            "indexed_vectors": details.indexed_vectors,
            "disk_bytes": details.disk_bytes,
            "precision": describe_precisions(self.store) if details.model else None,
        }
        extra = {key: value for key, value in details.extra.items() if key not in base}
        return InfoBody.model_validate(base | extra)

    def collection_model(self) -> ModelIdentity | None:
        """The model that built the collection; None while nothing is indexed."""
        return self.store.model()

    def trusted_roots(self) -> tuple[str, ...] | None:
        """The folders and web origins the collection's images may be served from; None when
        the collection records none (it was made before anyshot kept them)."""
        roots = read_trusted_roots(self.store)
        if roots or self.store.read_document(TRUSTED_ROOTS_DOCUMENT) is not None:
            return roots
        return None

    # -- snapshots -----------------------------------------------------------------------------

    def export(
        self, folder: str | os.PathLike[str], *, progress: ProgressCallback | None = None
    ) -> int:
        """Write the collection as a snapshot (Parquet shards + carried documents) into a folder;
        returns the number of points written.

        Raises:
            StoreNotFoundError: Nothing to export.
            ParquetError: The folder already holds a snapshot, or cannot be written.
        """
        from indexer.transfer import export_collection

        return export_collection(self.store, folder, progress=progress)

    def load(
        self,
        folder: str | os.PathLike[str],
        *,
        trust: Sequence[str] = (),
        progress: ProgressCallback | None = None,
    ) -> LoadReport:
        """Load a snapshot folder into the collection, checking every shard, row and concept;
        ``trust`` adds folders or origins the HTTP API may serve the loaded images from.

        Raises:
            ParquetError: The folder holds no shards.
            ConfigError: A ``trust`` entry is neither a folder nor an http(s) origin.
            BusyError: Another write over the whole collection is running.
        """
        from indexer.transfer import load_collection

        with self._exclusive("a load"):
            return load_collection(folder, self.store, trust=trust, progress=progress)

    def export_page(self, *, after: int | None, limit: int) -> ShardPage:
        """One page of a snapshot: the points with ids above ``after`` as one Parquet shard
        (see :func:`search.snapshot_parts.export_page`)."""
        return snapshot_parts.export_page(
            self.store,
            after=after,
            limit=limit,
            reserve_free_mb=self.settings.store.reserve_free_mb,
        )

    def export_documents(self) -> dict[str, Any]:
        """What a snapshot's ``documents.json`` holds: the concepts, never the trusted roots."""
        return snapshot_content(self.store)

    def load_shard(self, data: bytes, *, trust: Sequence[str] = ()) -> LoadReport:
        """Load one Parquet shard's bytes, checked as a snapshot's shard is
        (see :func:`search.snapshot_parts.load_shard`)."""
        with self._exclusive("a load"):
            return snapshot_parts.load_shard(self.store, data, trust=trust)

    def load_documents(self, content: dict[str, Any]) -> LoadReport:
        """Add the concepts of a snapshot's documents, checked as a snapshot folder's are."""
        with self._lock:
            return snapshot_parts.load_documents(self.store, content)

    def close(self) -> None:
        """Close the store (if this client opened it), and withdraw ``server.json``.

        After a text query that loaded the model because its text tower was not exported
        yet, the tower is exported first (seconds, once per model), so that the next text
        query from a new process needs no torch.
        """
        if self._text_tower_wanted and not self._serving:
            self._text_tower_wanted = False
            self.export_text_tower()
        if self._advertised is not None:
            from indexer.stores.holder import withdraw_server

            withdraw_server(self._advertised)
            self._advertised = None
        if self._owns_store:
            self.store.close()

    def __repr__(self) -> str:
        return f"ImageSearch({self.location!r})"


def check_concept_room(current: list[Concept], concept: Concept) -> None:
    """Refuse a concept that would make the collection's concepts more than a snapshot carries.

    Raises:
        QueryError: Too many concepts, or too many example vectors in all.
    """
    others = [c for c in current if normalise_name(c.name) != normalise_name(concept.name)]
    if len(others) >= MAX_CONCEPTS:
        raise QueryError(f"the collection has {len(others)} concepts, the most it may hold")
    floats = sum(np.asarray(c.vectors).size for c in others) + np.asarray(concept.vectors).size
    if floats > CONCEPT_FLOATS_LIMIT:
        raise QueryError(
            "the collection's concepts would hold more example vectors than a snapshot can "
            "carry: remove some concepts first"
        )
