"""Both store backends through one interface: Qdrant Edge in a folder, qdrant-client in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.config import StoreSettings
from indexer.errors import ModelMismatchError, StoreError, StoreLockedError, StoreNotFoundError
from indexer.schema import POINT_ID_MAX, ImagePayload, ModelIdentity, point_id
from indexer.stores.edge import EdgeStore
from indexer.stores.interface import PayloadFilter, VectorStore
from indexer.stores.opening import open_store

DIM = 8
MODEL = ModelIdentity(name="test-model", pretrained="seed0", dim=DIM, fingerprint="abc")


def unit_rows(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def payloads(count: int, folder: str = "/photos") -> list[dict]:
    return [
        ImagePayload(
            uri=f"{folder}/{i:03d}.jpg",
            size=1000 + i,
            mtime=1.7e9 + i,
            sha256=f"{i:064x}",
            width=640,
            height=480,
            format="PNG" if i % 2 else "JPEG",
        ).to_dict()
        for i in range(count)
    ]


def ids_of(items: list[dict]) -> list[int]:
    return [point_id(p["uri"]) for p in items]


@pytest.fixture(params=["edge", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> VectorStore:
    location = str(tmp_path / "store") if request.param == "edge" else ":memory:"
    opened = open_store(StoreSettings(location=location))
    yield opened
    opened.close()


@pytest.fixture
def filled(store: VectorStore) -> tuple[VectorStore, np.ndarray, list[dict]]:
    store.bind_model(MODEL)
    vectors, items = unit_rows(20), payloads(20)
    store.upsert(ids_of(items), vectors, items)
    return store, vectors, items


def test_open_store_picks_backend_by_location(tmp_path: Path) -> None:
    with open_store(StoreSettings(location=str(tmp_path / "s"))) as edge:
        assert edge.backend == "qdrant-edge"
    with open_store(StoreSettings(location=":memory:")) as memory:
        assert memory.backend == "qdrant-client"
    with pytest.raises(StoreError, match="unsupported store location"):
        open_store(StoreSettings(location="ftp://example/x"))


def test_empty_store_has_no_model_and_refuses_search(store: VectorStore) -> None:
    assert store.model() is None
    assert store.count() == 0
    assert store.retrieve([1, 2]) == []
    assert list(store.scroll()) == []
    with pytest.raises(StoreNotFoundError, match="index images first"):
        store.search(unit_rows(1)[0], limit=3)


def test_search_finds_each_vector_first(filled) -> None:
    store, vectors, items = filled
    for row in (0, 7, 19):
        hits = store.search(vectors[row], limit=3)
        assert hits[0].id == point_id(items[row]["uri"])
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].payload == items[row]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_reupsert_is_idempotent(filled) -> None:
    store, vectors, items = filled
    store.upsert(ids_of(items), vectors, items)
    store.upsert(ids_of(items[:5]), vectors[:5], items[:5])
    assert store.count() == 20


def test_upsert_replaces_vector_and_payload(filled) -> None:
    store, vectors, items = filled
    changed = dict(items[3], size=5)
    store.upsert([point_id(changed["uri"])], vectors[4:5], [changed])
    [point] = store.retrieve([point_id(changed["uri"])], with_vectors=True)
    assert point.payload["size"] == 5
    np.testing.assert_allclose(point.vector, vectors[4], atol=1e-6)
    assert store.count() == 20


def test_delete_removes_only_given_ids(filled) -> None:
    store, vectors, items = filled
    gone = ids_of(items[:3])
    store.delete([*gone, 12345])  # an unknown id is ignored
    assert store.count() == 17
    assert store.retrieve(gone) == []
    assert point_id(items[0]["uri"]) not in [h.id for h in store.search(vectors[0], limit=20)]


def test_retrieve_keeps_order_and_skips_missing(filled) -> None:
    store, _, items = filled
    wanted = [ids_of(items)[5], 999, ids_of(items)[2]]
    assert [p.id for p in store.retrieve(wanted)] == [wanted[0], wanted[2]]
    # Ids no point can have (negative, beyond 64 bits) are missing too, not an error.
    impossible = [-807798721, 2**64, wanted[0]]
    assert [p.id for p in store.retrieve(impossible, with_vectors=True)] == [wanted[0]]
    assert store.retrieve([-1]) == []


def test_scroll_visits_every_point_once(filled) -> None:
    store, vectors, items = filled
    seen = list(store.scroll(batch_size=6, with_vectors=True))
    assert sorted(p.id for p in seen) == sorted(ids_of(items))
    by_id = dict(zip(ids_of(items), vectors, strict=True))
    for point in seen:
        np.testing.assert_allclose(point.vector, by_id[point.id], atol=1e-6)


def test_filters(filled) -> None:
    store, vectors, items = filled
    other = payloads(4, folder="/elsewhere")
    store.upsert(ids_of(other), unit_rows(4, seed=9), other)
    assert store.count(PayloadFilter(uri_prefix="/photos/")) == 20
    assert store.count(PayloadFilter(uri_prefix="/elsewhere/")) == 4
    assert store.count(PayloadFilter(formats=("PNG",))) == 12
    assert store.count(PayloadFilter(size_min=1005, size_max=1009)) == 5 + 4 - 4
    assert store.count(PayloadFilter(mtime_min=1.7e9 + 18)) == 2
    hits = store.search(vectors[0], limit=30, where=PayloadFilter(uri_prefix="/elsewhere/"))
    assert sorted(h.id for h in hits) == sorted(ids_of(other))
    only = ids_of(items)[:2]
    assert sorted(p.id for p in store.scroll(where=PayloadFilter(ids=tuple(only)))) == sorted(only)
    # The largest id that can name a point is a valid condition (it names none here).
    assert store.count(PayloadFilter(ids=(POINT_ID_MAX, only[0]))) == 1
    assert store.count(PayloadFilter(ids=(POINT_ID_MAX,), formats=("PNG",))) == 0


def test_score_threshold_and_offset(filled) -> None:
    store, vectors, _ = filled
    everything = store.search(vectors[0], limit=20)
    cut = (everything[4].score + everything[5].score) / 2  # between two results
    above = store.search(vectors[0], limit=20, score_threshold=cut)
    assert [h.id for h in above] == [h.id for h in everything[:5]]
    page = store.search(vectors[0], limit=5, offset=5)
    assert [h.id for h in page] == [h.id for h in everything[5:10]]


def test_set_payload_tags_and_filter_by_tag(filled) -> None:
    store, _, items = filled
    tagged = ids_of(items)[:3]
    store.set_payload(tagged, {"tags": ["cat"]})
    tagged_ids = sorted(p.id for p in store.scroll(where=PayloadFilter(tags=("cat",))))
    assert tagged_ids == sorted(tagged)
    assert store.retrieve(tagged[:1])[0].payload["uri"] == items[0]["uri"]  # other keys kept


def test_model_mismatch_is_refused(filled) -> None:
    store, _, _ = filled
    store.bind_model(MODEL)  # the same model binds again
    with pytest.raises(ModelMismatchError, match="test-model/seed0"):
        store.bind_model(ModelIdentity(name="other", pretrained=None, dim=DIM))
    with pytest.raises(ModelMismatchError):
        store.bind_model(
            ModelIdentity(name="test-model", pretrained="seed0", dim=DIM, fingerprint="different")
        )


def test_edge_store_reopens_from_disk(tmp_path: Path) -> None:
    location = tmp_path / "store"
    vectors, items = unit_rows(10), payloads(10)
    with EdgeStore(location) as store:
        store.bind_model(MODEL)
        store.upsert(ids_of(items), vectors, items)
        store.delete(ids_of(items)[:2])
        store.optimize()
    with EdgeStore(location) as reopened:
        assert reopened.model() == MODEL
        assert reopened.count() == 8
        assert reopened.search(vectors[5], limit=1)[0].id == ids_of(items)[5]
        info = reopened.info()
        assert info.points == 8
        assert info.disk_bytes > 0


def test_edge_store_is_locked_against_a_second_opener(tmp_path: Path) -> None:
    location = tmp_path / "store"
    vectors, items = unit_rows(5), payloads(5)
    with EdgeStore(location) as store:
        store.bind_model(MODEL)
        store.upsert(ids_of(items), vectors, items)
        with pytest.raises(StoreLockedError, match="open in another process"):
            EdgeStore(location)
        # the refused opener did not damage the open store
        store.upsert(ids_of(items), vectors, items)
        assert store.count() == 5
    with EdgeStore(location) as reopened:
        assert reopened.count() == 5


def test_edge_store_refuses_a_file_and_foreign_shard(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        EdgeStore(a_file)
    foreign = tmp_path / "foreign"
    (foreign / "shard").mkdir(parents=True)
    (foreign / "shard" / "junk").write_text("x")
    with EdgeStore(foreign) as store, pytest.raises(StoreError, match="not an anyshot store"):
        store.bind_model(MODEL)
