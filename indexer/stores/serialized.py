"""A store shared by threads: one call at a time, so that searches and an index run interleave.

The HTTP API owns its store and runs index jobs in a thread of the same process (an embedded
store allows one process). Neither Qdrant Edge's Python binding nor qdrant-client's in-memory
mode promise that a search may run while another thread writes, so :class:`SerializedStore`
makes every call atomic: a search waits at most for the store call in progress (one batch
upsert), never for a whole index run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from indexer.schema import ModelIdentity
from indexer.stores.interface import (
    PayloadFilter,
    ScoredPoint,
    StoredPoint,
    StoreInfo,
    VectorStore,
)


class SerializedStore(VectorStore):
    """Wrap a store so that threads take turns, one store call at a time.

    Args:
        inner: The open store; closing this wrapper closes it.
    """

    def __init__(self, inner: VectorStore) -> None:
        super().__init__(inner.location)
        self.inner = inner
        self.backend = inner.backend
        self._lock = threading.RLock()

    @property  # type: ignore[override]
    def read_only(self) -> bool:
        return self.inner.read_only

    @property  # type: ignore[override]
    def read_only_reason(self) -> str:
        return self.inner.read_only_reason

    def model(self) -> ModelIdentity | None:
        with self._lock:
            return self.inner.model()

    def _create(self, identity: ModelIdentity) -> None:
        with self._lock:
            self.inner._create(identity)

    def bind_model(self, identity: ModelIdentity) -> None:
        with self._lock:
            self.inner.bind_model(identity)

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> None:
        with self._lock:
            self.inner.upsert(ids, vectors, payloads)

    def delete(self, ids: Sequence[int]) -> None:
        with self._lock:
            self.inner.delete(ids)

    def search(
        self,
        vector: np.ndarray,
        *,
        limit: int,
        offset: int = 0,
        where: PayloadFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[ScoredPoint]:
        with self._lock:
            return self.inner.search(
                vector, limit=limit, offset=offset, where=where, score_threshold=score_threshold
            )

    def retrieve(self, ids: Sequence[int], *, with_vectors: bool = False) -> list[StoredPoint]:
        with self._lock:
            return self.inner.retrieve(ids, with_vectors=with_vectors)

    def scroll(
        self,
        *,
        batch_size: int = 1024,
        with_vectors: bool = False,
        where: PayloadFilter | None = None,
        start: int | None = None,
    ) -> Iterator[StoredPoint]:
        # The lock is held per batch, not for the whole iteration: a caller that scrolls a
        # large collection must not stop the other threads until it is done.
        points = self.inner.scroll(
            batch_size=batch_size, with_vectors=with_vectors, where=where, start=start
        )
        while True:
            with self._lock:
                batch = [point for _, point in zip(range(batch_size), points, strict=False)]
            yield from batch
            if len(batch) < batch_size:
                return

    def search_batch(
        self,
        vectors: np.ndarray,
        *,
        limit: int,
        where: PayloadFilter | None = None,
        score_threshold: float | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        with self._lock:
            return self.inner.search_batch(
                vectors,
                limit=limit,
                where=where,
                score_threshold=score_threshold,
                with_payload=with_payload,
            )

    def read_document(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.inner.read_document(name)

    def write_document(self, name: str, document: dict[str, Any] | None) -> None:
        with self._lock:
            self.inner.write_document(name, document)

    def ordered(
        self,
        key: str,
        *,
        limit: int,
        descending: bool = False,
        where: PayloadFilter | None = None,
    ) -> list[StoredPoint]:
        with self._lock:
            return self.inner.ordered(key, limit=limit, descending=descending, where=where)

    def count(self, where: PayloadFilter | None = None) -> int:
        with self._lock:
            return self.inner.count(where)

    def set_payload(self, ids: Sequence[int], payload: dict[str, Any]) -> None:
        with self._lock:
            self.inner.set_payload(ids, payload)

    def hold(self) -> None:
        with self._lock:
            self.inner.hold()

    def optimize(self) -> bool:
        with self._lock:
            return self.inner.optimize()

    def index_payload_key(self, key: str) -> None:
        with self._lock:
            self.inner.index_payload_key(key)

    def flush(self) -> None:
        with self._lock:
            self.inner.flush()

    def info(self) -> StoreInfo:
        with self._lock:
            return self.inner.info()

    def close(self) -> None:
        with self._lock:
            self.inner.close()
