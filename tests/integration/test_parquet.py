"""Parquet shards: one schema, written atomically, read back into any store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from indexer.config import StoreSettings
from indexer.errors import ModelMismatchError, ParquetError
from indexer.parquet_store import (
    CHECKSUM_METADATA_KEY,
    ParquetShardWriter,
    list_shards,
    parquet_schema,
    read_shards,
)
from indexer.schema import ImagePayload, ModelIdentity, point_id
from indexer.stores.opening import open_store

MODEL = ModelIdentity(name="test-model", pretrained=None, dim=4)


def batch(start: int, count: int) -> tuple[list[int], np.ndarray, list[dict]]:
    items = [
        ImagePayload(
            uri=f"/p/{i}.jpg",
            size=i,
            mtime=float(i),
            sha256="0" * 64,
            width=2,
            height=3,
            format="JPEG",
            tags=["t"] if i % 2 else [],
        ).to_dict()
        for i in range(start, start + count)
    ]
    vectors = np.eye(4, dtype=np.float32)[[i % 4 for i in range(start, start + count)]]
    return [point_id(p["uri"]) for p in items], vectors, items


def test_roundtrip_keeps_ids_vectors_and_payloads(tmp_path: Path) -> None:
    writer = ParquetShardWriter(tmp_path / "pq", MODEL)
    first, second = batch(0, 5), batch(5, 3)
    writer.write(*first)
    writer.write(*second)
    shards = list(read_shards(tmp_path / "pq", expect=MODEL))
    assert len(shards) == 2
    assert shards[0].model == MODEL
    assert [int(i) for i in shards[0].ids] == first[0]
    np.testing.assert_array_equal(shards[1].vectors, second[1])
    assert shards[0].payloads == first[2]
    assert shards[0].vectors.dtype == np.float32


def test_shards_share_one_schema_and_record_the_model(tmp_path: Path) -> None:
    writer = ParquetShardWriter(tmp_path, MODEL)
    path = writer.write(*batch(0, 2))
    schema = pq.read_schema(path)
    expected = parquet_schema(MODEL)
    assert schema.remove_metadata().equals(expected.remove_metadata())
    written = dict(schema.metadata)
    assert written.pop(CHECKSUM_METADATA_KEY).startswith(b"sha256:")
    assert written == expected.metadata
    assert list_shards(tmp_path) == [path]
    assert not list(tmp_path.glob(".*.tmp"))


def test_wrong_dimension_and_model_are_refused(tmp_path: Path) -> None:
    writer = ParquetShardWriter(tmp_path, MODEL)
    ids, _, items = batch(0, 2)
    with pytest.raises(ParquetError, match="do not match dimension 4"):
        writer.write(ids, np.zeros((2, 3), dtype=np.float32), items)
    writer.write(*batch(0, 2))
    with pytest.raises(ModelMismatchError):
        list(read_shards(tmp_path, expect=ModelIdentity(name="other", pretrained=None, dim=4)))


def test_a_foreign_parquet_file_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa

    pq.write_table(pa.table({"x": [1]}), tmp_path / "part-0.parquet")
    with pytest.raises(ParquetError, match="not an anyshot shard"):
        list(read_shards(tmp_path))


def test_shards_reload_into_another_store_without_reembedding(tmp_path: Path) -> None:
    writer = ParquetShardWriter(tmp_path / "pq", MODEL)
    writer.write(*batch(0, 6))
    with open_store(StoreSettings(location=str(tmp_path / "edge"))) as store:
        for shard in read_shards(tmp_path / "pq"):
            store.bind_model(shard.model)
            store.upsert([int(i) for i in shard.ids], shard.vectors, shard.payloads)
        assert store.count() == 6
        hit = store.search(np.eye(4, dtype=np.float32)[1], limit=1)[0]
        assert hit.payload["uri"] in {"/p/1.jpg", "/p/5.jpg"}
        assert hit.score == pytest.approx(1.0)


def test_index_runs_keep_the_store_reserve_free_when_writing_shards(
    image_folder, random_model_name, tmp_path
):
    from indexer.config import Settings
    from indexer.errors import DiskSpaceError
    from search.client import ImageSearch

    everything = 1_000_000  # MiB: more than any test disk has free
    settings = Settings(
        model={"name": random_model_name},
        store={"location": ":memory:", "reserve_free_mb": everything},  # writes no disk itself
        index={"parquet_dir": str(tmp_path / "parquet"), "workers": 0},
    )
    with ImageSearch(settings) as client, pytest.raises(DiskSpaceError) as refused:
        client.index(image_folder["red"].parent)
    assert "write a Parquet shard of 6 images" in str(refused.value)
    assert list_shards(tmp_path / "parquet") == []
