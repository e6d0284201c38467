"""The embedded store: Qdrant Edge (``qdrant-edge-py``), the Qdrant engine inside this process.

A store folder holds::

    anyshot.json    format version and the identity of the model that built the collection
    anyshot.lock    held (flock) by the one process that has the store open
    documents/      small JSON documents kept with the collection (registered concepts, ...)
    shard/          the Qdrant Edge shard (segments, WAL, HNSW index after optimize())
    parquet/        Parquet shards of the embeddings (written by the indexer)

Qdrant Edge allows one process per shard, and a second ``EdgeShard.load`` on an open shard not
only fails but can damage its payload index; the lock file turns that into a clean
:class:`StoreLockedError` before Qdrant Edge is touched.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from indexer.config import ScaleSettings
from indexer.errors import StoreError, StoreLockedError
from indexer.schema import INDEXED_PAYLOAD_KEYS, VECTOR_NAME, ModelIdentity
from indexer.store import (
    PayloadFilter,
    ScoredPoint,
    StoredPoint,
    StoreInfo,
    VectorStore,
    check_document_name,
    storable_ids,
)

METADATA_FILE = "anyshot.json"
LOCK_FILE = "anyshot.lock"
SHARD_DIR = "shard"
DOCUMENTS_DIR = "documents"
FORMAT_VERSION = 1
EDGE_CONFIG_FILE = "edge_config.json"
"""Where Qdrant Edge persists a shard's configuration (read for :meth:`EdgeStore.info`)."""
FULL_SCAN_THRESHOLD_KB = 10_000
"""Below this many kilobytes of vectors a segment is searched exactly (Qdrant's default)."""

logger = logging.getLogger(__name__)

_PAYLOAD_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
}


class EdgeStore(VectorStore):
    """A collection in a local folder, served by Qdrant Edge in this process.

    Args:
        location: The store folder; created on the first write.
        scale: Layout of a new shard (on-disk vectors and payload, quantization, HNSW, payload
            indexes; sharding and replication do not apply) and search parameters. An existing
            shard keeps the layout it was created with.

    Raises:
        StoreLockedError: Another process has this store open.
        StoreError: The folder holds something that is not an anyshot store.
    """

    backend = "qdrant-edge"

    def __init__(
        self, location: str | os.PathLike[str], *, scale: ScaleSettings | None = None
    ) -> None:
        super().__init__(str(location))
        self.scale = scale or ScaleSettings()
        self._search_params = _search_params(self.scale)
        self.root = Path(location).expanduser().absolute()
        self._lock_fd: int | None = None
        self._shard: qe.EdgeShard | None = None
        self._model: ModelIdentity | None = None
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: not a folder (a store location is a folder)")
        if (self.root / METADATA_FILE).is_file():
            self._lock()
            try:
                self._model = self._read_metadata()
                self._shard = self._call(
                    "open the shard", qe.EdgeShard.load, str(self.root / SHARD_DIR)
                )
            except BaseException:
                self.close()  # release the lock of a store that could not be opened
                raise

    # -- opening -------------------------------------------------------------------------------

    def _lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreLockedError(
                f"{self.root} is open in another process (pid {holder}); Qdrant Edge allows one "
                f"process per store: stop it, or query it through its HTTP API"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def hold(self) -> None:
        """Take the store's lock now, even before a collection exists.

        A process that will write later (the API server, which indexes on request) holds the
        folder from the start, so that no other process creates a collection under it.

        Raises:
            StoreLockedError: Another process has this store open.
        """
        if self._lock_fd is None:
            self._lock()

    def _read_metadata(self) -> ModelIdentity:
        path = self.root / METADATA_FILE
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT_VERSION:
                raise StoreError(
                    f"{path}: store format {data.get('format')!r} is not "
                    f"{FORMAT_VERSION}; re-create the store (anyshot load)"
                )
            return ModelIdentity.from_dict(data["model"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{path}: unreadable store metadata: {exc}") from exc

    def _create(self, identity: ModelIdentity) -> None:
        shard_dir = self.root / SHARD_DIR
        if shard_dir.exists() and any(shard_dir.iterdir()):
            raise StoreError(
                f"{shard_dir} holds data but {METADATA_FILE} is missing: "
                f"not an anyshot store, or a damaged one"
            )
        if self._lock_fd is None:
            self._lock()
        shard = self._call(
            "create the shard",
            qe.EdgeShard.create,
            str(shard_dir),
            _edge_config(identity, self.scale),
        )
        indexed = INDEXED_PAYLOAD_KEYS if self.scale.payload_indexes else {}
        for key, kind in indexed.items():
            self._call(
                f"index payload key {key}",
                shard.update,
                qe.UpdateOperation.create_field_index(key, _PAYLOAD_SCHEMA[kind]),
            )
        shard.flush()
        metadata = {"format": FORMAT_VERSION, "model": identity.to_dict()}
        tmp = self.root / f"{METADATA_FILE}.tmp"
        tmp.write_text(json.dumps(metadata, indent=2))
        os.replace(tmp, self.root / METADATA_FILE)
        self._shard, self._model = shard, identity

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # qdrant-edge raises bare Exception
            raise StoreError(f"Qdrant Edge could not {what}: {exc}") from exc

    def _require_shard(self) -> qe.EdgeShard:
        if self._shard is None:
            self.require_model()
        assert self._shard is not None
        return self._shard

    # -- VectorStore ---------------------------------------------------------------------------

    def model(self) -> ModelIdentity | None:
        return self._model

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        if not len(ids):
            return
        shard = self._require_shard()
        rows = np.asarray(vectors, dtype=np.float32).tolist()
        points = [
            qe.Point(id=int(pid), vector={VECTOR_NAME: row}, payload=payload)
            for pid, row, payload in zip(ids, rows, payloads, strict=True)
        ]
        self._call("upsert points", shard.update, qe.UpdateOperation.upsert_points(points))

    def delete(self, ids: Sequence[int]) -> None:
        if not len(ids) or self._shard is None:
            return
        self._call(
            "delete points",
            self._shard.update,
            qe.UpdateOperation.delete_points([int(i) for i in ids]),
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
        shard = self._require_shard()
        request = qe.QueryRequest(
            limit=limit,
            offset=offset or None,
            query=qe.Query.Nearest(
                np.asarray(vector, dtype=np.float32).tolist(), using=VECTOR_NAME
            ),
            with_payload=True,
            filter=_edge_filter(where),
            score_threshold=score_threshold,
            params=self._search_params,
        )
        found = self._call("search", shard.query, request)
        return [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in found]

    def retrieve(self, ids: Sequence[int], *, with_vectors: bool = False) -> list[StoredPoint]:
        wanted = storable_ids(ids)
        if not wanted or self._shard is None:
            return []
        records = self._call(
            "retrieve points",
            self._shard.retrieve,
            wanted,
            with_payload=True,
            with_vector=with_vectors,
        )
        by_id = {int(r.id): _stored(r, with_vectors) for r in records}
        return [by_id[int(i)] for i in ids if int(i) in by_id]

    def scroll(
        self,
        *,
        batch_size: int = 1024,
        with_vectors: bool = False,
        where: PayloadFilter | None = None,
    ) -> Iterator[StoredPoint]:
        if self._shard is None:
            return
        offset: int | None = None
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=batch_size,
                filter=_edge_filter(where),
                with_payload=True,
                with_vector=with_vectors,
            )
            records, offset = self._call("scroll points", self._shard.scroll, request)
            for record in records:
                yield _stored(record, with_vectors)
            if offset is None:
                return

    def count(self, where: PayloadFilter | None = None) -> int:
        if self._shard is None:
            return 0
        return int(
            self._call(
                "count points",
                self._shard.count,
                qe.CountRequest(exact=True, filter=_edge_filter(where)),
            )
        )

    def set_payload(self, ids: Sequence[int], payload: dict[str, Any]) -> None:
        if not len(ids):
            return
        shard = self._require_shard()
        self._call(
            "set payload",
            shard.update,
            qe.UpdateOperation.set_payload([int(i) for i in ids], payload),
        )

    def read_document(self, name: str) -> dict[str, Any] | None:
        path = self.root / DOCUMENTS_DIR / f"{check_document_name(name)}.json"
        if self._model is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable document: {exc}") from exc

    def write_document(self, name: str, document: dict[str, Any] | None) -> None:
        self.require_model()
        folder = self.root / DOCUMENTS_DIR
        path = folder / f"{check_document_name(name)}.json"
        try:
            if document is None:
                path.unlink(missing_ok=True)
                return
            folder.mkdir(exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
            os.replace(tmp, path)  # readers never see half a document
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}") from exc

    def optimize(self) -> bool:
        if self._shard is None:
            return False
        return bool(self._call("optimize the index", self._shard.optimize))

    def flush(self) -> None:
        if self._shard is not None:
            self._call("flush", self._shard.flush)

    def info(self) -> StoreInfo:
        points = indexed = 0
        extra: dict[str, Any] = {}
        if self._shard is not None:
            shard_info = self._call("read shard info", self._shard.info)
            points, indexed = shard_info.points_count, shard_info.indexed_vectors_count
            extra = _edge_layout(self.root / SHARD_DIR) | {
                "payload_indexes": sorted(shard_info.payload_schema)
            }
        # st_blocks, not st_size: Qdrant Edge pre-allocates sparse files of tens of MB.
        disk = sum(f.stat().st_blocks * 512 for f in self.root.rglob("*") if f.is_file())
        return StoreInfo(
            location=str(self.root),
            backend=self.backend,
            model=self._model,
            points=points,
            indexed_vectors=indexed,
            disk_bytes=disk,
            extra=extra,
        )

    def close(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            try:
                shard.flush()
            finally:
                shard.close()
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor releases the flock


def _edge_config(identity: ModelIdentity, scale: ScaleSettings) -> qe.EdgeConfig:
    """The shard layout for ``scale``: Qdrant Edge's equivalents of a server collection's."""
    if scale.shard_number not in (None, 1) or scale.replication_factor not in (None, 1):
        logger.warning(
            "shard_number and replication_factor apply to a Qdrant server; an embedded store "
            "has one shard"
        )
    return qe.EdgeConfig(
        vectors={
            VECTOR_NAME: qe.EdgeVectorParams(
                size=identity.dim,
                distance=qe.Distance.Cosine,
                memory=qe.Memory.Cold if scale.on_disk_vectors else qe.Memory.Cached,
            )
        },
        payload_memory=qe.Memory.Cold if scale.on_disk_payload else qe.Memory.Cached,
        hnsw_config=qe.HnswIndexConfig(
            m=scale.hnsw_m,
            ef_construct=scale.hnsw_ef_construct,
            full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
        ),
        quantization_config=_edge_quantization(scale),
        optimizers=(
            None
            if scale.indexing_threshold is None
            else qe.EdgeOptimizersConfig(indexing_threshold=scale.indexing_threshold)
        ),
    )


def _edge_layout(shard_dir: Path) -> dict[str, Any]:
    """The shard's layout, from the configuration Qdrant Edge keeps beside it (best effort)."""
    try:
        config = json.loads((shard_dir / EDGE_CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return {}
    vector = config.get("vectors", {}).get(VECTOR_NAME, {})
    hnsw = config.get("hnsw_config") or {}
    return {
        # Qdrant Edge's defaults: vectors cached in RAM, payload cold on disk.
        "on_disk_vectors": vector.get("memory", "cached") == "cold",
        "on_disk_payload": config.get("payload_memory", "cold") == "cold",
        "quantization": next(iter(config.get("quantization_config") or {}), "none"),
        "hnsw_m": hnsw.get("m"),
        "hnsw_ef_construct": hnsw.get("ef_construct"),
    }


def _edge_quantization(scale: ScaleSettings) -> Any:
    # Not always in RAM: placed like the vectors they compress, as on a server.
    memory = qe.Memory.Cached if scale.quantization_always_ram else None
    if scale.quantization == "scalar":
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=memory)
    if scale.quantization == "binary":
        return qe.BinaryQuantizationConfig(memory=memory)
    return None


def _search_params(scale: ScaleSettings) -> qe.SearchParams:
    return qe.SearchParams(
        hnsw_ef=scale.hnsw_ef,
        quantization=qe.QuantizationSearchParams(
            rescore=scale.quantization_rescore, oversampling=scale.quantization_oversampling
        ),
    )


def _stored(record: Any, with_vectors: bool) -> StoredPoint:
    vector = None
    if with_vectors and record.vector is not None:
        vector = np.asarray(record.vector[VECTOR_NAME], dtype=np.float32)
    return StoredPoint(int(record.id), dict(record.payload or {}), vector)


def _edge_filter(where: PayloadFilter | None) -> qe.Filter | None:
    if where is None or where.is_empty():
        return None
    must: list[Any] = []
    if where.uri_prefix:
        must.append(qe.FieldCondition(key="uri", match=qe.MatchPrefix(where.uri_prefix)))
    if where.formats:
        must.append(qe.FieldCondition(key="format", match=qe.MatchAny(list(where.formats))))
    if where.tags:
        must.append(qe.FieldCondition(key="tags", match=qe.MatchAny(list(where.tags))))
    if where.mtime_min is not None or where.mtime_max is not None:
        must.append(
            qe.FieldCondition(
                key="mtime", range=qe.RangeFloat(gte=where.mtime_min, lte=where.mtime_max)
            )
        )
    if where.size_min is not None or where.size_max is not None:
        must.append(
            qe.FieldCondition(
                key="size", range=qe.RangeFloat(gte=where.size_min, lte=where.size_max)
            )
        )
    if where.ids:
        must.append(qe.HasIdCondition({int(i) for i in where.ids}))
    return qe.Filter(must=must)
