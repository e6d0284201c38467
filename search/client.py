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
from pathlib import Path
from typing import Any, Literal, Self

from indexer.config import ModelSettings, Settings, model_for_collection
from indexer.embed import Embedder
from indexer.errors import ConfigError, QueryError
from indexer.indexing import IndexReport, ProgressCallback, index_source
from indexer.run_folders import run_folders
from indexer.store import PayloadFilter, StoreInfo, VectorStore, open_store
from search.engine import Hit, ImageInput, SearchEngine

IndexRunner = Literal["auto", "inline", "prefect", "dask"]


class ImageSearch:
    """Index and search one collection.

    The store opens at once; the model loads on first use. Which model: the one named in
    ``settings.model`` when it was set explicitly (argument or ``ANYSHOT_MODEL__*``), otherwise
    the one that built the collection, otherwise the default.

    Args:
        settings: All settings; ``Settings()`` reads ``ANYSHOT_*`` variables.
        store: An already open store to use instead of ``settings.store``.
        embedder: An already loaded model to use instead of ``settings.model``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings or Settings()
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
            self._engine = SearchEngine(self.store, self.embedder)
        return self._engine

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
        runner: IndexRunner = "inline",
        dask_address: str | None = None,
        dask_workers: int = 2,
        progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Index a folder, a list file (text or Parquet) or one image.

        Args:
            source: What to index.
            runner: ``inline`` (this process, no orchestration), ``prefect`` (the Prefect flow,
                decoding in worker processes), ``dask`` (the flow's batches on a Dask cluster),
                or ``auto`` (``prefect`` when ``PREFECT_API_URL`` is set, else ``inline``).
            dask_address: Scheduler address of an existing Dask cluster (runner ``dask``).
            dask_workers: Worker processes of a local Dask cluster when no address is given.
            progress: Called as ``progress(done, total)`` as batches are done.

        Returns:
            Counts of indexed, unchanged, removed and skipped images, and the time taken.
        """
        if runner == "auto":
            runner = "prefect" if os.environ.get("PREFECT_API_URL") else "inline"
        if runner != "inline":
            return self._index_with_flow(str(source), runner, dask_address, dask_workers, progress)
        report = index_source(
            source,
            embedder=self.embedder,
            store=self.store,
            settings=self.settings.index,
            parquet_dir=self.parquet_dir(),
            state_dir=self.state_dir(),
            progress=progress,
        )
        self._engine = None
        return report

    def _index_with_flow(
        self,
        source: str,
        runner: str,
        dask_address: str | None,
        dask_workers: int,
        progress: ProgressCallback | None,
    ) -> IndexReport:
        from pipelines.index_flow import run_index_flow

        model = self.settings.model
        explicit = {"name", "pretrained"} & model.model_fields_set
        parameters: dict[str, Any] = {
            "model": model.name if explicit else None,
            "pretrained": model.pretrained if explicit else None,
            "store": self.settings.store.location,
            "index": self.settings.index.model_dump(mode="json", exclude_unset=True),
        }
        # The flow opens the store itself; an embedded store allows one opener at a time.
        self._release_store()
        try:
            result = run_index_flow(
                source,
                runner="dask" if runner == "dask" else "local",
                dask_address=dask_address,
                dask_workers=dask_workers,
                progress=progress,
                **parameters,
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
        k: int = 10,
        offset: int = 0,
        where: PayloadFilter | None = None,
        threshold: float | None = None,
    ) -> list[Hit]:
        """Search by a description, an example image, a name, or an indexed image's id.

        Exactly one of ``text``, ``image``, ``name`` and ``similar_to`` is given.

        Raises:
            QueryError: No query or more than one, an empty text, an unreadable image.
            StoreNotFoundError: Nothing was indexed yet.
            ModelMismatchError: The collection was built by another model.
        """
        given = [q for q in (text, image, name, similar_to) if q is not None]
        if len(given) != 1:
            raise QueryError(
                "give exactly one query: a text, an image, a name, or an indexed image's id"
            )
        options: dict[str, Any] = {"k": k, "offset": offset, "where": where, "threshold": threshold}
        if text is not None:
            return self.engine.search_text(text, **options)
        if image is not None:
            return self.engine.search_image(image, **options)
        if name is not None:
            return self.engine.search_name(name, **options)
        assert similar_to is not None
        return self.engine.search_similar(similar_to, **options)

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
