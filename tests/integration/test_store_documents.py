"""Small JSON documents kept with a collection, on the embedded store and the client store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.config import StoreSettings
from indexer.errors import StoreError, StoreNotFoundError
from indexer.schema import ModelIdentity
from indexer.stores.opening import open_store

IDENTITY = ModelIdentity("tiny", None, 4)


@pytest.fixture(params=["edge", "memory"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "store") if request.param == "edge" else ":memory:"


def test_documents_are_written_replaced_and_deleted(location: str) -> None:
    with open_store(StoreSettings(location=location)) as store:
        assert store.read_document("concepts") is None
        with pytest.raises(StoreNotFoundError):
            store.write_document("concepts", {"a": 1})
        store.bind_model(IDENTITY)
        store.write_document("concepts", {"items": [1, 2], "nested": {"x": 1}})
        store.write_document("other", {"b": True})
        store.write_document("concepts", {"items": [3]})  # replaced, not merged
        assert store.read_document("concepts") == {"items": [3]}
        assert store.read_document("other") == {"b": True}
        store.write_document("concepts", None)
        assert store.read_document("concepts") is None
        store.write_document("concepts", None)  # deleting twice is fine
        with pytest.raises(StoreError, match="invalid document name"):
            store.read_document("../escape")


def test_documents_outlive_the_process_on_the_embedded_store(tmp_path: Path) -> None:
    settings = StoreSettings(location=str(tmp_path / "store"))
    with open_store(settings) as store:
        store.bind_model(IDENTITY)
        store.write_document("concepts", {"kept": "yes"})
    with open_store(settings) as store:
        assert store.read_document("concepts") == {"kept": "yes"}


def test_search_batch_answers_one_list_per_vector(location: str) -> None:
    with open_store(StoreSettings(location=location)) as store:
        store.bind_model(IDENTITY)
        vectors = np.eye(4, dtype=np.float32)
        store.upsert([1, 2, 3, 4], vectors, [{"uri": f"u{i}"} for i in range(4)])
        found = store.search_batch(vectors[:2], limit=2, score_threshold=0.5)
        assert [[p.id for p in hits] for hits in found] == [[1], [2]]
