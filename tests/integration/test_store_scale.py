"""Collection settings for scale (ScaleSettings) on both backends: stored layout and search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import models

from indexer.config import ScaleSettings, StoreSettings
from indexer.schema import INDEXED_PAYLOAD_KEYS, ImagePayload, ModelIdentity, point_id
from indexer.stores.edge import EdgeStore
from indexer.stores.interface import PayloadFilter, VectorStore
from indexer.stores.opening import open_store
from indexer.stores.qdrant_server import collection_params

DIM = 64
MODEL = ModelIdentity(name="test-model", pretrained="seed0", dim=DIM, fingerprint="abc")


def clustered_rows(count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 centres, like image embeddings (near neighbours exist)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, DIM))
    rows = centres[rng.integers(0, 20, count)] + 0.3 * rng.normal(size=(count, DIM))
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def payloads(count: int) -> list[dict]:
    return [
        ImagePayload(
            uri=f"/photos/{i:05d}.jpg",
            size=1000 + i,
            mtime=1.7e9 + i,
            sha256=f"{i:064x}",
            width=640,
            height=480,
            format="PNG" if i % 2 else "JPEG",
        ).to_dict()
        for i in range(count)
    ]


def fill(store: VectorStore, count: int) -> tuple[np.ndarray, list[int]]:
    store.bind_model(MODEL)
    vectors, items = clustered_rows(count), payloads(count)
    ids = [point_id(p["uri"]) for p in items]
    for start in range(0, count, 500):
        store.upsert(
            ids[start : start + 500], vectors[start : start + 500], items[start : start + 500]
        )
    return vectors, ids


def exact_top(vectors: np.ndarray, ids: list[int], query: np.ndarray, k: int) -> list[int]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return [ids[i] for i in order]


def test_scale_settings_come_from_nested_environment_variables(monkeypatch) -> None:
    from indexer.config import Settings

    monkeypatch.setenv("ANYSHOT_STORE__SCALE__QUANTIZATION", "binary")
    monkeypatch.setenv("ANYSHOT_STORE__SCALE__SHARD_NUMBER", "6")
    monkeypatch.setenv("ANYSHOT_STORE__SCALE__REPLICATION_FACTOR", "2")
    monkeypatch.setenv("ANYSHOT_STORE__SCALE__ON_DISK_VECTORS", "true")
    monkeypatch.setenv("ANYSHOT_STORE__SCALE__QUANTIZATION_OVERSAMPLING", "2.5")
    scale = Settings().store.scale
    assert (scale.quantization, scale.shard_number, scale.replication_factor) == ("binary", 6, 2)
    assert scale.on_disk_vectors is True and scale.quantization_oversampling == 2.5
    defaults = ScaleSettings()
    assert (defaults.quantization, defaults.shard_number, defaults.on_disk_vectors) == (
        "none",
        None,
        False,
    )
    assert (defaults.hnsw_m, defaults.hnsw_ef_construct, defaults.payload_indexes) == (
        16,
        100,
        True,
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"quantization": "pq"},
        {"shard_number": 0},
        {"hnsw_m": 2},
        {"quantization_oversampling": 0.5},
        {"replication_factor": 1, "write_consistency_factor": 2},
    ],
)
def test_scale_settings_refuse_values_qdrant_would_refuse(bad: dict) -> None:
    with pytest.raises(ValueError):
        ScaleSettings(**bad)


def test_server_collection_is_created_with_the_scale_layout() -> None:
    scale = ScaleSettings(
        shard_number=6,
        replication_factor=2,
        write_consistency_factor=2,
        on_disk_vectors=True,
        on_disk_payload=False,
        quantization="scalar",
        quantization_always_ram=True,
        hnsw_m=32,
        hnsw_ef_construct=200,
    )
    params = collection_params(MODEL, scale)
    assert params["vectors_config"] == {
        "image": models.VectorParams(size=DIM, distance=models.Distance.COSINE, on_disk=True)
    }
    assert (params["shard_number"], params["replication_factor"]) == (6, 2)
    assert (params["write_consistency_factor"], params["on_disk_payload"]) == (2, False)
    assert params["hnsw_config"] == models.HnswConfigDiff(m=32, ef_construct=200)
    assert params["quantization_config"] == models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True
        )
    )
    binary = collection_params(MODEL, ScaleSettings(quantization="binary"))
    assert binary["quantization_config"] == models.BinaryQuantization(
        binary=models.BinaryQuantizationConfig(always_ram=True)
    )
    defaults = collection_params(MODEL, ScaleSettings())
    assert defaults["quantization_config"] is defaults["optimizers_config"] is None
    assert collection_params(MODEL, ScaleSettings(indexing_threshold=0))[
        "optimizers_config"
    ] == models.OptimizersConfigDiff(indexing_threshold=0)
    assert defaults["shard_number"] is defaults["replication_factor"] is None  # server decides


def test_memory_store_accepts_the_scale_layout_and_searches_exactly() -> None:
    scale = ScaleSettings(
        shard_number=3,
        replication_factor=2,
        write_consistency_factor=2,
        on_disk_vectors=True,
        on_disk_payload=False,
        quantization="scalar",
        hnsw_ef=128,
        quantization_oversampling=2.0,
    )
    with open_store(StoreSettings(location=":memory:", scale=scale)) as store:
        vectors, ids = fill(store, 300)
        # Local mode keeps the on-disk flag of vectors and drops what needs a server.
        assert store.info().extra["on_disk_vectors"] is True
        # Search parameters go with every query; local mode searches exactly.
        for row in (0, 150, 299):
            hits = store.search(vectors[row], limit=5)
            assert [h.id for h in hits] == exact_top(vectors, ids, vectors[row], 5)


def recall_at_10(store: VectorStore, vectors: np.ndarray, ids: list[int]) -> float:
    rows = range(0, len(ids), 100)
    found = [{h.id for h in store.search(vectors[r], limit=10)} for r in rows]
    return float(
        np.mean(
            [
                len(f & set(exact_top(vectors, ids, vectors[r], 10))) / 10
                for f, r in zip(found, rows, strict=True)
            ]
        )
    )


@pytest.mark.parametrize(("quantization", "oversampling"), [("scalar", 2.0), ("binary", 16.0)])
def test_edge_store_quantizes_and_still_finds_the_nearest_images(
    tmp_path: Path, quantization: str, oversampling: float
) -> None:
    location = tmp_path / "store"
    scale = ScaleSettings(
        quantization=quantization,
        on_disk_vectors=True,
        hnsw_m=8,
        hnsw_ef_construct=64,
        hnsw_ef=128,
        quantization_oversampling=oversampling,
        indexing_threshold=100,  # KB: index these 750 KB of vectors
    )
    with EdgeStore(location, scale=scale) as store:
        vectors, ids = fill(store, 3000)
        store.optimize()
        info = store.info()
        assert info.indexed_vectors == 3000  # HNSW built, with the quantized copy
        assert info.extra["quantization"] == quantization
        assert info.extra["on_disk_vectors"] is True
        assert (info.extra["hnsw_m"], info.extra["hnsw_ef_construct"]) == (8, 64)
        # Rescored by the full vectors: every image finds itself first, with its exact score.
        for row in range(0, 3000, 100):
            [first] = store.search(vectors[row], limit=1)
            assert first.id == ids[row]
            assert first.score == pytest.approx(1.0, abs=1e-4)
        assert recall_at_10(store, vectors, ids) >= 0.95
        filtered = store.search(vectors[1], limit=5, where=PayloadFilter(formats=("PNG",)))
        odd = [i for i in exact_top(vectors, ids, vectors[1], 3000) if ids.index(i) % 2]
        assert [h.id for h in filtered] == odd[:5]
    # The layout belongs to the shard; search parameters to the process that opens it: without
    # oversampling the quantized search returns worse neighbours.
    with EdgeStore(location, scale=ScaleSettings(quantization_oversampling=None)) as reopened:
        assert reopened.info().extra["quantization"] == quantization
        assert recall_at_10(reopened, vectors, ids) < 0.9


def test_edge_store_without_payload_indexes_and_in_ram(tmp_path: Path) -> None:
    scale = ScaleSettings(payload_indexes=False, on_disk_payload=False)
    with EdgeStore(tmp_path / "plain", scale=scale) as store:
        fill(store, 10)
        assert store.info().extra["payload_indexes"] == []
        assert store.info().extra["on_disk_payload"] is False
    with EdgeStore(tmp_path / "indexed") as store:
        fill(store, 10)
        extra = store.info().extra
    assert sorted(extra["payload_indexes"]) == sorted(INDEXED_PAYLOAD_KEYS)
    assert (extra["quantization"], extra["on_disk_vectors"], extra["hnsw_m"]) == ("none", False, 16)


def test_edge_store_warns_that_sharding_needs_a_server(tmp_path: Path, caplog) -> None:
    scale = ScaleSettings(shard_number=4, replication_factor=2)
    with EdgeStore(tmp_path / "store", scale=scale) as store:
        fill(store, 3)
    assert "apply to a Qdrant server" in caplog.text


def test_an_embedded_collection_moves_to_a_quantized_layout_with_export_and_load(
    tmp_path: Path,
) -> None:
    from indexer.transfer import export_collection, load_collection

    with EdgeStore(tmp_path / "embedded") as embedded:
        vectors, ids = fill(embedded, 1200)
        export_collection(embedded, tmp_path / "snapshot")
    scale = ScaleSettings(
        quantization="scalar", on_disk_vectors=True, hnsw_m=8, indexing_threshold=100
    )
    with EdgeStore(tmp_path / "moved", scale=scale) as moved:
        assert load_collection(tmp_path / "snapshot", moved).loaded == 1200
        moved.optimize()
        info = moved.info()
        assert (info.points, info.indexed_vectors) == (1200, 1200)
        assert (info.extra["quantization"], info.extra["hnsw_m"]) == ("scalar", 8)
        assert moved.model() == MODEL
        for row in (0, 600, 1199):
            [first] = moved.search(vectors[row], limit=1)
            assert first.id == ids[row]
