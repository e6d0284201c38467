"""`anyshot export` / `anyshot load`: move a collection between stores without re-embedding."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.config import StoreSettings
from indexer.errors import ParquetError
from indexer.store import open_store
from indexer.transfer import export_collection, load_collection
from search.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_export_then_load_into_another_store(image_folder, random_model_name, tmp_path):
    source, target = str(tmp_path / "source"), str(tmp_path / "target")
    run("index", str(image_folder["red"].parent), "--model", random_model_name, "--store", source)
    code, out, _ = run("export", str(tmp_path / "snapshot"), "--store", source, "--json")
    assert code == 0 and json.loads(out) == {"exported": 6, "folder": str(tmp_path / "snapshot")}
    code, out, _ = run("load", str(tmp_path / "snapshot"), "--store", target, "--json")
    assert code == 0 and json.loads(out) == {"loaded": 6, "points": 6}

    # the loaded store answers like the original: same model, same neighbours
    code, out, _ = run(
        "search", "--image", str(image_folder["blue"]), "--store", target, "-k", "6", "--json"
    )
    loaded_hits = [json.loads(line) for line in out.splitlines()]
    code, out, _ = run(
        "search", "--image", str(image_folder["blue"]), "--store", source, "-k", "6", "--json"
    )
    original_hits = [json.loads(line) for line in out.splitlines()]
    assert [h["id"] for h in loaded_hits] == [h["id"] for h in original_hits]
    assert loaded_hits[0]["uri"] == str(image_folder["blue"])


def test_export_reflects_removals_and_load_keeps_the_newest(tmp_path):
    from indexer.schema import ModelIdentity

    model = ModelIdentity("m", None, 4)
    vectors = np.eye(4, dtype=np.float32)
    payloads = [{"uri": f"/p/{i}.jpg", "size": i} for i in range(4)]
    with open_store(StoreSettings(location=str(tmp_path / "a"))) as store:
        store.bind_model(model)
        store.upsert([1, 2, 3, 4], vectors, payloads)
        store.delete([4])
        assert export_collection(store, tmp_path / "snap", batch_size=2) == 3
        with pytest.raises(ParquetError, match="already holds Parquet shards"):
            export_collection(store, tmp_path / "snap")
    with open_store(StoreSettings(location=":memory:")) as memory:
        assert load_collection(tmp_path / "snap", memory) == 3
        assert sorted(p.id for p in memory.scroll()) == [1, 2, 3]
        with pytest.raises(ParquetError, match="no Parquet shards"):
            load_collection(tmp_path / "empty", memory)


def test_load_refuses_another_model(image_folder, random_model_name, other_model_dir, tmp_path):
    store = str(tmp_path / "store")
    run("index", str(image_folder["red"].parent), "--model", random_model_name, "--store", store)
    other = str(tmp_path / "other")
    run(
        "index",
        str(image_folder["red"]),
        "--model",
        f"local-dir:{other_model_dir}",
        "--store",
        other,
    )
    code, _, err = run("load", str(tmp_path / "other" / "parquet"), "--store", store)
    assert code == 1 and "this collection was built with model" in err
