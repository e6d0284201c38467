"""A collection on a Qdrant server or cluster, or in qdrant-client's in-memory mode.

The model identity lives in the collection's metadata, so every client of a server sees it.
``:memory:`` runs the very same code against qdrant-client's local mode, which is how the test
suite covers the server path without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pydantic import SecretStr
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from indexer.config import ScaleSettings
from indexer.errors import StoreError
from indexer.schema import (
    INDEXED_PAYLOAD_KEYS,
    ON_DEMAND_PAYLOAD_KEYS,
    VECTOR_NAME,
    ModelIdentity,
    storable_ids,
)
from indexer.stores.filter_translation import FilterConstructors, translate_filter
from indexer.stores.interface import (
    PayloadFilter,
    ScoredPoint,
    StoredPoint,
    StoreInfo,
    VectorStore,
    check_document_name,
)
from indexer.stores.location import MEMORY_LOCATION
from indexer.stores.native_errors import is_engine_panic

METADATA_KEY = "anyshot"
DOCUMENT_KEY = "anyshot_document_{}"
"""Collection metadata key of a document; its value is the document as a JSON string, so that
the server's merge of metadata replaces a document instead of merging old keys into it."""
FORMAT_VERSION = 1
_QDRANT_ERRORS = (UnexpectedResponse, ResponseHandlingException, ValueError, OSError, RuntimeError)
_PAYLOAD_SCHEMA = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "geo": models.PayloadSchemaType.GEO,
    # Full-text: words, lower-cased (the OCR text; see indexer.ocr).
    "text": models.TextIndexParams(
        type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True
    ),
}

CLIENT_FILTERS: FilterConstructors[Any, models.Filter] = FilterConstructors(
    prefix=lambda key, text: models.FieldCondition(key=key, match=models.MatchPrefix(prefix=text)),
    any_of=lambda key, values: models.FieldCondition(key=key, match=models.MatchAny(any=values)),
    between=lambda key, low, high: models.FieldCondition(
        key=key, range=models.Range(gte=low, lte=high)
    ),
    has_id=lambda ids: models.HasIdCondition(has_id=ids),
    substring=lambda key, text: models.FieldCondition(
        key=key, match=models.MatchSubstring(substring=text)
    ),
    geo_radius=lambda key, lat, lon, meters: models.FieldCondition(
        key=key,
        geo_radius=models.GeoRadius(center=models.GeoPoint(lon=lon, lat=lat), radius=meters),
    ),
    present=lambda key: models.Filter(
        must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=key))]
    ),
    all_of=lambda conditions: models.Filter(must=conditions),
)
"""How qdrant-client says each filter condition (see :mod:`indexer.stores.filter_translation`)."""


class QdrantClientStore(VectorStore):
    """A collection reached through ``qdrant-client``.

    Args:
        location: ``:memory:`` or an ``http(s)://`` URL.
        collection: Collection name.
        api_key: Server API key, if the server wants one.
        timeout: Request timeout in seconds.
        scale: Layout of a new collection (shards, replicas, on-disk storage, quantization,
            HNSW) and search parameters. qdrant-client's ``:memory:`` mode records the layout
            but searches exactly.
    """

    backend = "qdrant-client"

    def __init__(
        self,
        location: str,
        *,
        collection: str = "images",
        api_key: SecretStr | None = None,
        timeout: float = 30.0,
        scale: ScaleSettings | None = None,
    ) -> None:
        super().__init__(location)
        self.collection = collection
        self.scale = scale or ScaleSettings()
        # Local mode searches exactly and warns at each query that search parameters do nothing.
        self.in_memory = location == MEMORY_LOCATION
        self._search_params = None if self.in_memory else _search_params(self.scale)
        try:
            if self.in_memory:
                self.client = QdrantClient(location=MEMORY_LOCATION)
            else:
                self.client = QdrantClient(
                    url=location,
                    timeout=int(timeout),
                    api_key=api_key.get_secret_value() if api_key else None,
                )
        except _QDRANT_ERRORS as exc:
            raise StoreError(f"cannot connect to Qdrant at {location}: {exc}") from exc
        self._model: ModelIdentity | None = None
        self._model_loaded = False

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _QDRANT_ERRORS as exc:
            raise StoreError(f"Qdrant at {self.location} could not {what}: {exc}") from exc
        except BaseException as exc:
            if is_engine_panic(exc):  # a Rust panic in a native part: not an Exception
                raise StoreError(
                    f"Qdrant at {self.location} failed to {what} (engine panic: {exc})"
                ) from exc
            raise

    def model(self) -> ModelIdentity | None:
        if not self._model_loaded:
            exists = self._call(
                "check the collection", self.client.collection_exists, self.collection
            )
            if exists:
                info = self._call(
                    "read the collection", self.client.get_collection, self.collection
                )
                meta = (info.config.metadata or {}).get(METADATA_KEY)
                if not meta or "model" not in meta:
                    raise StoreError(
                        f"collection {self.collection!r} at {self.location} was not "
                        f"made by anyshot (no model in its metadata)"
                    )
                self._model = ModelIdentity.from_dict(meta["model"])
            self._model_loaded = True
        return self._model

    def _create(self, identity: ModelIdentity) -> None:
        scale = self.scale
        self._call(
            "create the collection",
            self.client.create_collection,
            self.collection,
            **collection_params(identity, scale),
        )
        # Local mode ignores payload indexes, with a warning.
        if scale.payload_indexes and not self.in_memory:
            for key, kind in INDEXED_PAYLOAD_KEYS.items():
                self._call(
                    f"index payload key {key}",
                    self.client.create_payload_index,
                    self.collection,
                    key,
                    _PAYLOAD_SCHEMA[kind],
                )
        self._model, self._model_loaded = identity, True

    def _exists(self) -> bool:
        return self.model() is not None

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        if not len(ids):
            return
        self.require_model()
        rows = np.asarray(vectors, dtype=np.float32).tolist()
        points = [
            models.PointStruct(id=int(pid), vector={VECTOR_NAME: row}, payload=payload)
            for pid, row, payload in zip(ids, rows, payloads, strict=True)
        ]
        self._call("upsert points", self.client.upsert, self.collection, points=points, wait=True)

    def delete(self, ids: Sequence[int]) -> None:
        if not len(ids) or not self._exists():
            return
        self._call(
            "delete points",
            self.client.delete,
            self.collection,
            points_selector=models.PointIdsList(points=[int(i) for i in ids]),
            wait=True,
        )

    def search(
        self,
        vector: np.ndarray,
        *,
        limit: int,
        offset: int = 0,
        where: PayloadFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[ScoredPoint]:
        self.require_model()
        response = self._call(
            "search",
            self.client.query_points,
            self.collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            using=VECTOR_NAME,
            limit=limit,
            offset=offset or None,
            query_filter=translate_filter(where, CLIENT_FILTERS),
            score_threshold=score_threshold,
            search_params=self._search_params,
            with_payload=True,
        )
        return [
            ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in response.points
        ]

    def retrieve(self, ids: Sequence[int], *, with_vectors: bool = False) -> list[StoredPoint]:
        wanted = storable_ids(ids)
        if not wanted or not self._exists():
            return []
        records = self._call(
            "retrieve points",
            self.client.retrieve,
            self.collection,
            ids=wanted,
            with_payload=True,
            with_vectors=with_vectors,
        )
        by_id = {int(r.id): _stored(r, with_vectors) for r in records}
        return [by_id[int(i)] for i in ids if int(i) in by_id]

    def scroll(
        self,
        *,
        batch_size: int = 1024,
        with_vectors: bool = False,
        where: PayloadFilter | None = None,
        start: int | None = None,
    ) -> Iterator[StoredPoint]:
        if not self._exists():
            return
        offset = start
        while True:
            records, offset = self._call(
                "scroll points",
                self.client.scroll,
                self.collection,
                limit=batch_size,
                offset=offset,
                scroll_filter=translate_filter(where, CLIENT_FILTERS),
                with_payload=True,
                with_vectors=with_vectors,
            )
            for record in records:
                yield _stored(record, with_vectors)
            if offset is None:
                return

    def ordered(
        self,
        key: str,
        *,
        limit: int,
        descending: bool = False,
        where: PayloadFilter | None = None,
    ) -> list[StoredPoint]:
        if not self._exists():
            return []
        if not self.in_memory and key not in self._indexed_keys():
            return super().ordered(key, limit=limit, descending=descending, where=where)
        records, _ = self._call(
            "list points in order",
            self.client.scroll,
            self.collection,
            limit=limit,
            scroll_filter=translate_filter(where, CLIENT_FILTERS),
            order_by=models.OrderBy(key=key, direction="desc" if descending else "asc"),
            with_payload=True,
            with_vectors=False,
        )
        return [_stored(record, False) for record in records]

    def index_payload_key(self, key: str) -> None:
        kind = ON_DEMAND_PAYLOAD_KEYS[key]
        # Local mode (:memory:) ignores payload indexes, with a warning: it scans.
        if not self.scale.payload_indexes or self.in_memory or key in self._indexed_keys():
            return
        self._call(
            f"index payload key {key}",
            self.client.create_payload_index,
            self.collection,
            key,
            _PAYLOAD_SCHEMA[kind],
        )

    def _indexed_keys(self) -> set[str]:
        info = self._call("read the collection", self.client.get_collection, self.collection)
        return set(info.payload_schema or {})

    def count(self, where: PayloadFilter | None = None) -> int:
        if not self._exists():
            return 0
        result = self._call(
            "count points",
            self.client.count,
            self.collection,
            count_filter=translate_filter(where, CLIENT_FILTERS),
            exact=True,
        )
        return int(result.count)

    def set_payload(self, ids: Sequence[int], payload: dict[str, Any]) -> None:
        if not len(ids):
            return
        self.require_model()
        self._call(
            "set payload",
            self.client.set_payload,
            self.collection,
            payload=payload,
            points=[int(i) for i in ids],
            wait=True,
        )

    def search_batch(
        self,
        vectors: np.ndarray,
        *,
        limit: int,
        where: PayloadFilter | None = None,
        score_threshold: float | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        self.require_model()
        query_filter = translate_filter(where, CLIENT_FILTERS)
        requests = [
            models.QueryRequest(
                query=row,
                using=VECTOR_NAME,
                limit=limit,
                filter=query_filter,
                score_threshold=score_threshold,
                with_payload=with_payload,
            )
            for row in np.asarray(vectors, dtype=np.float32).tolist()
        ]
        if not requests:
            return []
        responses = self._call(
            "search", self.client.query_batch_points, self.collection, requests=requests
        )
        return [
            [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in r.points]
            for r in responses
        ]

    def read_document(self, name: str) -> dict[str, Any] | None:
        key = DOCUMENT_KEY.format(check_document_name(name))
        if not self._exists():
            return None
        info = self._call("read the collection", self.client.get_collection, self.collection)
        raw = (info.config.metadata or {}).get(key)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"collection metadata {key!r} is not a JSON document") from exc

    def write_document(self, name: str, document: dict[str, Any] | None) -> None:
        key = DOCUMENT_KEY.format(check_document_name(name))
        self.require_model()
        # An empty string stands for "deleted": a metadata merge cannot remove a key.
        value = "" if document is None else json.dumps(document)
        self._call(
            "write collection metadata",
            self.client.update_collection,
            self.collection,
            metadata={key: value},
        )

    def info(self) -> StoreInfo:
        model = self.model()
        points = indexed = 0
        extra: dict[str, Any] = {"collection": self.collection}
        if model is not None:
            collection = self._call(
                "read the collection", self.client.get_collection, self.collection
            )
            points = collection.points_count or 0
            indexed = collection.indexed_vectors_count
            extra |= _layout(collection.config)
        return StoreInfo(
            location=self.location,
            backend=self.backend,
            model=model,
            points=points,
            indexed_vectors=indexed,
            extra=extra,
        )

    def close(self) -> None:
        self.client.close()


def _layout(config: models.CollectionConfig) -> dict[str, Any]:
    """The collection's layout as the server reports it (keys named as in ScaleSettings)."""
    params = config.params
    vector = params.vectors.get(VECTOR_NAME) if isinstance(params.vectors, dict) else None
    return {
        "shard_number": params.shard_number,
        "replication_factor": params.replication_factor,
        "write_consistency_factor": params.write_consistency_factor,
        "on_disk_payload": params.on_disk_payload,
        "on_disk_vectors": bool(vector and vector.on_disk),
        "quantization": _quantization_name(config.quantization_config),
        "hnsw_m": config.hnsw_config.m,
        "hnsw_ef_construct": config.hnsw_config.ef_construct,
    }


def collection_params(identity: ModelIdentity, scale: ScaleSettings) -> dict[str, Any]:
    """The arguments of ``create_collection`` for vectors of ``identity`` laid out as ``scale``.

    qdrant-client's local mode (``:memory:``) accepts them all but keeps only some (it has one
    shard and searches exactly); a server applies them all.
    """
    return {
        "vectors_config": {
            VECTOR_NAME: models.VectorParams(
                size=identity.dim, distance=models.Distance.COSINE, on_disk=scale.on_disk_vectors
            )
        },
        "shard_number": scale.shard_number,
        "replication_factor": scale.replication_factor,
        "write_consistency_factor": scale.write_consistency_factor,
        "on_disk_payload": scale.on_disk_payload,
        "hnsw_config": models.HnswConfigDiff(m=scale.hnsw_m, ef_construct=scale.hnsw_ef_construct),
        "optimizers_config": (
            None
            if scale.indexing_threshold is None
            else models.OptimizersConfigDiff(indexing_threshold=scale.indexing_threshold)
        ),
        "quantization_config": _quantization(scale),
        "metadata": {METADATA_KEY: {"format": FORMAT_VERSION, "model": identity.to_dict()}},
    }


def _quantization(scale: ScaleSettings) -> models.QuantizationConfig | None:
    if scale.quantization == "scalar":
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=0.99, always_ram=scale.quantization_always_ram
            )
        )
    if scale.quantization == "binary":
        return models.BinaryQuantization(
            binary=models.BinaryQuantizationConfig(always_ram=scale.quantization_always_ram)
        )
    return None


def _quantization_name(config: Any) -> str:
    if isinstance(config, models.ScalarQuantization):
        return "scalar"
    if isinstance(config, models.BinaryQuantization):
        return "binary"
    return "none" if config is None else type(config).__name__


def _search_params(scale: ScaleSettings) -> models.SearchParams:
    # Quantization parameters are ignored by a collection without quantization.
    return models.SearchParams(
        hnsw_ef=scale.hnsw_ef,
        quantization=models.QuantizationSearchParams(
            rescore=scale.quantization_rescore, oversampling=scale.quantization_oversampling
        ),
    )


def _stored(record: Any, with_vectors: bool) -> StoredPoint:
    vector = None
    if with_vectors and record.vector is not None:
        vector = np.asarray(record.vector[VECTOR_NAME], dtype=np.float32)
    return StoredPoint(int(record.id), dict(record.payload or {}), vector)
