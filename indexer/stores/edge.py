"""The embedded store: Qdrant Edge (``qdrant-edge-py``), the Qdrant engine inside this process.

A store folder holds::

    anyshot.json    format version and the identity of the model that built the collection
    anyshot.lock    held (flock) by the one process that has the store open
    documents/      small JSON documents kept with the collection (registered concepts, ...)
    shard/          the Qdrant Edge shard (segments, WAL, HNSW index after optimize())
    parquet/        Parquet shards of the embeddings (written by the indexer)

Qdrant Edge allows one process per shard: the folder's lock
(:mod:`indexer.stores.folder_lock`) turns a second opener into a clean
:class:`StoreLockedError` before Qdrant Edge is touched. The shard's layout comes from the scale
settings (:mod:`indexer.stores.edge_layout`).

Creating a store survives a kill at any moment: under the lock, the shard is built in a
temporary folder (``.shard-new-*``), renamed to ``shard/``, and only then is ``anyshot.json``
written. The half-made states a kill can leave (a temporary folder; a shard without points and
without ``anyshot.json``, also left by older versions; ``anyshot.json`` without a shard) are
repaired by the next process that opens or creates the store.

A store this user may not write (a read-only mount, or files of another user) opens for reading:
Qdrant Edge cannot open files it may not write, so the shard is searched through a private copy
in the temporary folder, removed on close (see :mod:`indexer.stores.shard_copy`).

Before opening, creating and each write, free disk space is checked (:mod:`indexer.disk_space`):
Qdrant Edge's memory-mapped writes crash the process with SIGBUS on a full disk.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from indexer.config import ScaleSettings
from indexer.disk_space import (
    BATCH_BYTES,
    CREATE_BYTES,
    DEFAULT_RESERVE_MB,
    MIB,
    OPEN_BYTES,
    allocated_bytes,
    batch_bytes,
    check_free_space,
)
from indexer.errors import ModelMismatchError, StoreError
from indexer.schema import (
    INDEXED_PAYLOAD_KEYS,
    ON_DEMAND_PAYLOAD_KEYS,
    VECTOR_NAME,
    ModelIdentity,
    storable_ids,
)
from indexer.stores.edge_layout import (
    EDGE_CONFIG_FILE,
    PAYLOAD_SCHEMA,
    edge_config,
    read_edge_layout,
    search_params,
)
from indexer.stores.filter_translation import FilterConstructors, translate_filter
from indexer.stores.folder_lock import lock_for_reading, lock_for_writing
from indexer.stores.holder import SERVER_FILE
from indexer.stores.interface import (
    PayloadFilter,
    ScoredPoint,
    StoredPoint,
    StoreInfo,
    VectorStore,
    check_document_name,
)
from indexer.stores.native_errors import is_engine_panic
from indexer.stores.shard_copy import copy_tree, make_copy_folder, remove_copy

METADATA_FILE = "anyshot.json"
SHARD_DIR = "shard"
NEW_SHARD_PREFIX = ".shard-new-"
"""A shard being created is built in ``.shard-new-<pid>-<random>`` and renamed into place."""
DOCUMENTS_DIR = "documents"
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)

EDGE_FILTERS: FilterConstructors[Any, qe.Filter] = FilterConstructors(
    prefix=lambda key, text: qe.FieldCondition(key=key, match=qe.MatchPrefix(text)),
    any_of=lambda key, values: qe.FieldCondition(key=key, match=qe.MatchAny(values)),
    between=lambda key, low, high: qe.FieldCondition(
        key=key, range=qe.RangeFloat(gte=low, lte=high)
    ),
    has_id=lambda ids: qe.HasIdCondition(set(ids)),
    substring=lambda key, text: qe.FieldCondition(key=key, match=qe.MatchSubstring(text)),
    geo_radius=lambda key, lat, lon, meters: qe.FieldCondition(
        key=key, geo_radius=qe.GeoRadius(qe.GeoPoint(lon=lon, lat=lat), meters)
    ),
    present=lambda key: qe.Filter(must_not=[qe.IsEmptyCondition(key)]),
    all_of=lambda conditions: qe.Filter(must=conditions),
)
"""How Qdrant Edge says each filter condition (see :mod:`indexer.stores.filter_translation`)."""


class EdgeStore(VectorStore):
    """A collection in a local folder, served by Qdrant Edge in this process.

    Args:
        location: The store folder; created on the first write.
        scale: Layout of a new shard (on-disk vectors and payload, quantization, HNSW, payload
            indexes; sharding and replication do not apply) and search parameters. An existing
            shard keeps the layout it was created with.
        reserve_free_mb: Disk space (MiB) to keep free: opening, creating and each write
            stop with :class:`DiskSpaceError` when less would remain.

    Raises:
        StoreLockedError: Another process has this store open.
        StoreError: The folder holds something that is not an anyshot store.
        DiskSpaceError: Too little free space to open the store.
    """

    backend = "qdrant-edge"

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        scale: ScaleSettings | None = None,
        reserve_free_mb: int = DEFAULT_RESERVE_MB,
    ) -> None:
        super().__init__(str(location))
        self.scale = scale or ScaleSettings()
        self.reserve_bytes = reserve_free_mb * MIB
        self._search_params = search_params(self.scale)
        self.root = Path(location).expanduser().absolute()
        self._lock_fd: int | None = None
        self._shard: qe.EdgeShard | None = None
        self._model: ModelIdentity | None = None
        self._copy: Path | None = None
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: not a folder (a store location is a folder)")
        if (self.root / METADATA_FILE).is_file():
            try:
                reason = _read_only_reason(self.root)
                if reason is None:
                    self._lock()
                    self._open_existing()
                else:
                    self._open_for_reading(reason)
            except BaseException:
                self.close()  # release the lock of a store that could not be opened
                raise

    # -- opening -------------------------------------------------------------------------------

    def _lock(self) -> None:
        self._lock_fd = lock_for_writing(self.root)

    def _lock_for_reading(self) -> None:
        self._lock_fd = lock_for_reading(self.root)

    def hold(self) -> None:
        """Take the store's lock now, even before a collection exists.

        A process that will write later (the API server, which indexes on request) holds the
        folder from the start, so that no other process creates a collection under it. A
        read-only store is not held (nobody can write it).

        Raises:
            StoreLockedError: Another process has this store open.
        """
        if self._lock_fd is None and not self.read_only:
            self._lock()

    def _open_existing(self) -> None:
        """Open the store for writing (the lock is held), repairing what a kill left."""
        self._model = self._read_metadata()
        self._remove_new_shards()
        shard_dir = self.root / SHARD_DIR
        if not shard_dir.is_dir() or not any(shard_dir.iterdir()):
            logger.warning(
                "%s: %s has no shard (a store creation was interrupted, or it was removed); "
                "starting an empty one",
                self.root,
                METADATA_FILE,
            )
            self._shard = self._build_shard(self._model)
            return
        check_free_space(self.root, OPEN_BYTES, reserve=self.reserve_bytes, what="open the store")
        self._shard = self._call("open the shard", qe.EdgeShard.load, str(shard_dir))
        self._add_missing_payload_indexes()

    def _add_missing_payload_indexes(self) -> None:
        """Index payload keys that a newer anyshot filters on (a store made before photo
        metadata has no index for ``taken_ts``, ``country``, ...): once, when it opens for
        writing."""
        if not self.scale.payload_indexes or self._shard is None:
            return
        missing = {k: v for k, v in INDEXED_PAYLOAD_KEYS.items() if k not in self._indexed_keys()}
        for key, kind in missing.items():
            self._call(
                f"index payload key {key}",
                self._shard.update,
                qe.UpdateOperation.create_field_index(key, PAYLOAD_SCHEMA[kind]),
            )

    def _open_for_reading(self, reason: str) -> None:
        """Open a store this user may not write: search a private copy of its shard."""
        self.read_only, self.read_only_reason = True, reason
        self._lock_for_reading()
        self._model = self._read_metadata()
        shard_dir = self.root / SHARD_DIR
        if not (shard_dir / EDGE_CONFIG_FILE).is_file():
            raise StoreError(
                f"{shard_dir}: no shard, and the store is read-only ({reason}), so it cannot "
                f"be repaired here: open it once as a user who may write it"
            )
        import tempfile

        check_free_space(
            tempfile.gettempdir(),
            allocated_bytes(shard_dir) + OPEN_BYTES,
            reserve=self.reserve_bytes,
            what="copy the read-only store for searching",
        )
        self._copy = make_copy_folder()
        try:
            copy_tree(shard_dir, self._copy / SHARD_DIR)
        except OSError as exc:
            raise StoreError(
                f"cannot copy the read-only store {self.root} to {self._copy}: "
                f"{exc.strerror or exc}"
            ) from exc
        logger.info("%s is read-only (%s): searching a copy in %s", self.root, reason, self._copy)
        self._shard = self._call(
            "open the copy of the shard", qe.EdgeShard.load, str(self._copy / SHARD_DIR)
        )

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
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{path}: unreadable store metadata: {exc}") from exc

    # -- creating ------------------------------------------------------------------------------

    def bind_model(self, identity: ModelIdentity) -> None:
        self.require_writable()  # only writers bind: fail before any work is done
        super().bind_model(identity)

    def _create(self, identity: ModelIdentity) -> None:
        if self.root.is_dir() and not self.read_only:
            reason = _read_only_reason(self.root)
            if reason is not None:
                self.read_only, self.read_only_reason = True, reason
        self.require_writable()
        if self._lock_fd is None:
            self._lock()
        if (self.root / METADATA_FILE).is_file():
            # Another process created the store since this one looked: open what it made.
            self._open_existing()
            assert self._model is not None
            if not self._model.is_compatible(identity):
                raise ModelMismatchError(self._model.label, identity.label)
            return
        self._remove_new_shards()
        self._remove_orphan_shard()
        shard = self._build_shard(identity)
        try:
            _write_atomically(
                self.root / METADATA_FILE,
                json.dumps({"format": FORMAT_VERSION, "model": identity.to_dict()}, indent=2),
            )
        except OSError as exc:
            shard.close()
            raise StoreError(f"cannot write {self.root / METADATA_FILE}: {exc}") from exc
        self._shard, self._model = shard, identity

    def _build_shard(self, identity: ModelIdentity) -> qe.EdgeShard:
        """Create an empty shard in a temporary folder, rename it into place and open it."""
        check_free_space(
            self.root, CREATE_BYTES, reserve=self.reserve_bytes, what="create the store"
        )
        building = self.root / f"{NEW_SHARD_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        shard_dir = self.root / SHARD_DIR
        try:
            shard = self._call(
                "create the shard",
                qe.EdgeShard.create,
                str(building),
                edge_config(identity, self.scale),
            )
            try:
                indexed = INDEXED_PAYLOAD_KEYS if self.scale.payload_indexes else {}
                for key, kind in indexed.items():
                    self._call(
                        f"index payload key {key}",
                        shard.update,
                        qe.UpdateOperation.create_field_index(key, PAYLOAD_SCHEMA[kind]),
                    )
                self._call("flush the new shard", shard.flush)
            finally:
                shard.close()
            if shard_dir.is_dir() and not any(shard_dir.iterdir()):
                shard_dir.rmdir()
            os.rename(building, shard_dir)
            _sync_folder(self.root)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return self._call("open the shard", qe.EdgeShard.load, str(shard_dir))

    def _remove_new_shards(self) -> None:
        """Remove shards whose creation was interrupted (the lock is held: none is in use)."""
        for leftover in self.root.glob(f"{NEW_SHARD_PREFIX}*"):
            logger.info("removing %s, left by an interrupted store creation", leftover)
            shutil.rmtree(leftover, ignore_errors=True)

    def _remove_orphan_shard(self) -> None:
        """Remove a shard without points and without metadata (a creation killed after the
        rename, or by an older version); refuse a shard that holds anything."""
        shard_dir = self.root / SHARD_DIR
        if not shard_dir.exists():
            return
        if shard_dir.is_dir() and not any(shard_dir.iterdir()):
            shard_dir.rmdir()
            return
        points = None
        if (shard_dir / EDGE_CONFIG_FILE).is_file():
            check_free_space(
                self.root, OPEN_BYTES, reserve=self.reserve_bytes, what="open the store"
            )
            try:
                orphan = self._call("open the shard", qe.EdgeShard.load, str(shard_dir))
                try:
                    points = self._call("count points", orphan.count, qe.CountRequest(exact=True))
                finally:
                    orphan.close()
            except StoreError:
                points = None
        if points == 0:
            logger.info("removing %s: an empty shard left by an interrupted creation", shard_dir)
            shutil.rmtree(shard_dir)
            return
        raise StoreError(
            f"{shard_dir} holds data but {METADATA_FILE} is missing: "
            f"not an anyshot store, or a damaged one"
        )

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # qdrant-edge raises bare Exception
            raise StoreError(f"Qdrant Edge could not {what}: {exc}") from exc
        except BaseException as exc:
            if is_engine_panic(exc):  # a Rust panic: a BaseException, not an Exception
                raise StoreError(f"Qdrant Edge failed to {what} (engine panic: {exc})") from exc
            raise

    def _require_shard(self) -> qe.EdgeShard:
        if self._shard is None:
            self.require_model()
        assert self._shard is not None
        return self._shard

    def _check_space(self, needed: int, what: str) -> None:
        check_free_space(self.root, needed, reserve=self.reserve_bytes, what=what)

    # -- VectorStore ---------------------------------------------------------------------------

    def model(self) -> ModelIdentity | None:
        return self._model

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        if not len(ids):
            return
        self.require_writable()
        shard = self._require_shard()
        rows = np.asarray(vectors, dtype=np.float32)
        self._check_space(batch_bytes(rows, payloads), f"store {len(ids)} images")
        points = [
            qe.Point(id=int(pid), vector={VECTOR_NAME: row}, payload=payload)
            for pid, row, payload in zip(ids, rows.tolist(), payloads, strict=True)
        ]
        self._call("upsert points", shard.update, qe.UpdateOperation.upsert_points(points))

    def delete(self, ids: Sequence[int]) -> None:
        if not len(ids) or self._shard is None:
            return
        self.require_writable()
        self._check_space(BATCH_BYTES + 64 * len(ids), f"delete {len(ids)} images")
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
            filter=translate_filter(where, EDGE_FILTERS),
            score_threshold=score_threshold,
            params=self._search_params,
        )
        found = self._call("search", shard.query, request)
        return [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in found]

    def search_batch(
        self,
        vectors: np.ndarray,
        *,
        limit: int,
        where: PayloadFilter | None = None,
        score_threshold: float | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        shard = self._require_shard()
        edge_filter = translate_filter(where, EDGE_FILTERS)
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector.tolist(), using=VECTOR_NAME),
                with_payload=with_payload,
                filter=edge_filter,
                score_threshold=score_threshold,
                params=self._search_params,
            )
            for vector in np.asarray(vectors, dtype=np.float32)
        ]
        found = self._call("search", shard.query_batch, qe.QueryBatchRequest(requests))
        return [
            [ScoredPoint(int(p.id), float(p.score), dict(p.payload or {})) for p in points]
            for points in found
        ]

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
        start: int | None = None,
    ) -> Iterator[StoredPoint]:
        if self._shard is None:
            return
        offset: int | None = start
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=batch_size,
                filter=translate_filter(where, EDGE_FILTERS),
                with_payload=True,
                with_vector=with_vectors,
            )
            records, offset = self._call("scroll points", self._shard.scroll, request)
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
        if self._shard is None:
            return []
        if key not in self._indexed_keys():  # order_by needs a range index
            return super().ordered(key, limit=limit, descending=descending, where=where)
        request = qe.ScrollRequest(
            limit=limit,
            filter=translate_filter(where, EDGE_FILTERS),
            order_by=qe.OrderBy(key, qe.Direction.Desc if descending else qe.Direction.Asc),
            with_payload=True,
            with_vector=False,
        )
        records, _ = self._call("list points in order", self._shard.scroll, request)
        return [_stored(record, False) for record in records]

    def index_payload_key(self, key: str) -> None:
        kind = ON_DEMAND_PAYLOAD_KEYS[key]
        if not self.scale.payload_indexes or key in self._indexed_keys():
            return
        self.require_writable()
        self._call(
            f"index payload key {key}",
            self._require_shard().update,
            qe.UpdateOperation.create_field_index(key, PAYLOAD_SCHEMA[kind]),
        )

    def _indexed_keys(self) -> set[str]:
        shard = self._require_shard()
        return set(self._call("read the shard's info", shard.info).payload_schema)

    def count(self, where: PayloadFilter | None = None) -> int:
        if self._shard is None:
            return 0
        return int(
            self._call(
                "count points",
                self._shard.count,
                qe.CountRequest(exact=True, filter=translate_filter(where, EDGE_FILTERS)),
            )
        )

    def set_payload(self, ids: Sequence[int], payload: dict[str, Any]) -> None:
        if not len(ids):
            return
        self.require_writable()
        shard = self._require_shard()
        self._check_space(batch_bytes((), [payload] * len(ids)), f"update {len(ids)} images")
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
        self.require_writable()
        folder = self.root / DOCUMENTS_DIR
        path = folder / f"{check_document_name(name)}.json"
        text = "" if document is None else json.dumps(document, indent=1)
        self._check_space(BATCH_BYTES + 2 * len(text), f"write the document {name!r}")
        try:
            if document is None:
                path.unlink(missing_ok=True)
                return
            folder.mkdir(exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)  # readers never see half a document
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}") from exc

    def optimize(self) -> bool:
        if self._shard is None or self.read_only:
            return False
        shard_info = self._call("read shard info", self._shard.info)
        # Optimizing writes a new segment with the points that are not in an index yet.
        pending = max(shard_info.points_count - shard_info.indexed_vectors_count, 0)
        dim = self._model.dim if self._model is not None else 0
        self._check_space(BATCH_BYTES + 2 * pending * (4 * dim + 512), "build the search index")
        return bool(self._call("optimize the index", self._shard.optimize))

    def flush(self) -> None:
        if self._shard is not None and not self.read_only:
            self._call("flush", self._shard.flush)

    def info(self) -> StoreInfo:
        points = indexed = 0
        extra: dict[str, Any] = {}
        if self._shard is not None:
            shard_info = self._call("read shard info", self._shard.info)
            points, indexed = shard_info.points_count, shard_info.indexed_vectors_count
            extra = read_edge_layout(self.root / SHARD_DIR) | {
                "payload_indexes": sorted(shard_info.payload_schema)
            }
        if self.read_only:
            extra["read_only"] = True
        # st_blocks, not st_size: Qdrant Edge pre-allocates sparse files of tens of MB. A
        # server's server.json is not the collection's: info is the same served or not.
        disk = sum(
            f.stat().st_blocks * 512
            for f in self.root.rglob("*")
            if f.is_file() and f != self.root / SERVER_FILE
        )
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
        try:
            if self._shard is not None:
                shard, self._shard = self._shard, None
                try:
                    if not self.read_only:
                        self._call("flush", shard.flush)
                finally:
                    self._call("close the shard", shard.close)
        finally:
            if self._copy is not None:
                copy, self._copy = self._copy, None
                remove_copy(copy)
            if self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                os.close(fd)  # closing the descriptor releases the flock


def _read_only_reason(root: Path) -> str | None:
    """Why this user cannot write the store at ``root``, or None if it can."""
    try:
        if os.statvfs(root).f_flag & os.ST_RDONLY:
            return "a read-only file system"
    except OSError:
        pass
    if not os.access(root, os.W_OK | os.X_OK):
        return "its folder is not writable"
    for parent, _, files in os.walk(root / SHARD_DIR):
        if not os.access(parent, os.W_OK | os.X_OK):
            return "its shard folder is not writable"
        for name in files:
            if not os.access(os.path.join(parent, name), os.R_OK | os.W_OK):
                return "its shard files are not writable"
    return None


def _write_atomically(path: Path, text: str) -> None:
    """Write a small file so that a kill or a power cut leaves the old one or the new one."""
    tmp = path.with_name(f"{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable (best effort where folders cannot be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _stored(record: Any, with_vectors: bool) -> StoredPoint:
    vector = None
    if with_vectors and record.vector is not None:
        vector = np.asarray(record.vector[VECTOR_NAME], dtype=np.float32)
    return StoredPoint(int(record.id), dict(record.payload or {}), vector)
