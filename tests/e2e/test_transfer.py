"""`anyshot export` / `anyshot load`: move a collection between stores without re-embedding."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runs import run

from indexer.config import StoreSettings
from indexer.errors import ParquetError
from indexer.stores.opening import open_store
from indexer.transfer import export_collection, load_collection


def test_export_then_load_into_another_store(image_folder, random_model_name, tmp_path):
    source, target = str(tmp_path / "source"), str(tmp_path / "target")
    run("index", str(image_folder["red"].parent), "--model", random_model_name, "--store", source)
    code, out, _ = run("export", str(tmp_path / "snapshot"), "--store", source, "--json")
    assert code == 0 and json.loads(out) == {"exported": 6, "folder": str(tmp_path / "snapshot")}
    code, out, _ = run("load", str(tmp_path / "snapshot"), "--store", target, "--json")
    report = json.loads(out)
    assert code == 0
    assert {k: report[k] for k in ("loaded", "rejected", "bad_shards", "points", "shards")} == {
        "loaded": 6,
        "rejected": 0,
        "bad_shards": [],
        "points": 6,
        "shards": 1,
    }
    assert report["unchecked_shards"] == 0  # exported shards carry a checksum

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
    from indexer.schema import ModelIdentity, point_id

    model = ModelIdentity("m", None, 4)
    vectors = np.eye(4, dtype=np.float32)
    payloads = [{"uri": f"/p/{i}.jpg", "size": i} for i in range(4)]
    ids = [point_id(p["uri"]) for p in payloads]
    with open_store(StoreSettings(location=str(tmp_path / "a"))) as store:
        store.bind_model(model)
        store.upsert(ids, vectors, payloads)
        store.delete(ids[3:])
        exported: list[tuple[int, int]] = []
        assert (
            export_collection(
                store, tmp_path / "snap", batch_size=2, progress=lambda *a: exported.append(a)
            )
            == 3
        )
        assert exported == [(2, 3), (3, 3)]  # points written, of the points in the store
        with pytest.raises(ParquetError, match="already holds Parquet shards"):
            export_collection(store, tmp_path / "snap")
        # a newer version of image 0 in a later shard wins
        store.upsert(ids[:1], vectors[1:2], [dict(payloads[0], size=99)])
        store.delete(ids[1:])
        assert export_collection(store, tmp_path / "snap2") == 1
    newer = sorted((tmp_path / "snap2").glob("part-*.parquet"))[0]
    newer.rename(tmp_path / "snap" / "part-99999999999999999999-newest.parquet")
    (tmp_path / "snap" / "part-00000000000000000000-bad.parquet").write_bytes(b"not parquet")
    with open_store(StoreSettings(location=":memory:")) as memory:
        loaded: list[tuple[int, int]] = []
        report = load_collection(tmp_path / "snap", memory, progress=lambda *a: loaded.append(a))
        assert (report.loaded, report.rejected, len(report.bad_shards)) == (4, 0, 1)
        assert loaded == [(1, 4), (2, 4), (3, 4), (4, 4)]  # shards done (a bad one too), of all
        assert sorted(p.id for p in memory.scroll()) == sorted(ids[:3])
        assert memory.retrieve(ids[:1])[0].payload["size"] == 99
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
    [foreign] = sorted((tmp_path / "other" / "parquet").glob("part-*.parquet"))
    code, out, err = run("load", str(foreign.parent), "--store", store, "--json")
    assert code == 1
    report = json.loads(out.splitlines()[-1])
    assert (report["loaded"], report["rejected"], report["points"]) == (0, 0, 6)
    assert report["bad_shards"] == [
        {
            "path": str(foreign),
            "reason": f"embeddings of model 'local-dir:{other_model_dir}', but the store holds "
            f"'{random_model_name}'",
        }
    ]
    assert err.strip().splitlines() == [
        f"error: 0 rows and 1 shards of {foreign.parent} were rejected (see rejected_rows and "
        "bad_shards in the JSON above); the rest was loaded"
    ]


def test_load_summary_line_and_memory_warning(image_folder, random_model_name, tmp_path):
    source = str(tmp_path / "source")
    run("index", str(image_folder["red"].parent), "--model", random_model_name, "--store", source)
    code, out, err = run("load", str(tmp_path / "source" / "parquet"), "--store", ":memory:")
    assert code == 0
    assert (
        out.strip() == "loaded 6 rows; rejected 0 rows and 0 of 1 shards; the store holds 6 images"
    )
    assert err.strip() == (
        "warning: --store :memory: keeps nothing: the loaded images are gone when this command ends"
    )


def test_export_and_load_carry_concepts_and_tag_scores(image_folder, random_model_name, tmp_path):
    source, target = str(tmp_path / "source"), str(tmp_path / "target")
    images = image_folder["red"].parent
    run("index", str(images), "--model", random_model_name, "--store", source)
    code, _, err = run("concept", "add", "warm", str(image_folder["red"]), "--store", source)
    assert code == 0, err
    labels = tmp_path / "labels.txt"
    labels.write_text("red\nblue\ngreen\n")
    code, _, err = run("tag", "--labels", str(labels), "--top", "2", "--store", source)
    assert code == 0, err
    snapshot = tmp_path / "snapshot"
    code, _, err = run("export", str(snapshot), "--store", source)
    assert code == 0, err
    assert (snapshot / "documents.json").is_file()

    code, out, err = run("load", str(snapshot), "--store", target)
    assert (code, err) == (0, "")
    assert out.strip() == (
        "loaded 6 rows and 1 concepts; rejected 0 rows and 0 of 1 shards; the store holds 6 images"
    )
    with open_store(StoreSettings(location=source)) as before:
        expected = {p.id: p.payload for p in before.scroll()}
        concepts_before = before.read_document("concepts")
    with open_store(StoreSettings(location=target)) as after:
        loaded = {p.id: p.payload for p in after.scroll()}
        assert after.read_document("concepts") == concepts_before
    assert loaded.keys() == expected.keys()
    for point_id, payload in expected.items():
        assert len(payload["tags"]) == 2
        assert loaded[point_id]["tags"] == payload["tags"]
        assert loaded[point_id]["tag_scores"] == pytest.approx(payload["tag_scores"])

    # the concept answers in the loaded store as in the original
    hits = {}
    for store in (source, target):
        code, out, err = run("search", "--name", "warm", "--store", store, "-k", "3", "--json")
        assert code == 0, err
        hits[store] = [json.loads(line)["id"] for line in out.splitlines()]
    assert hits[source] == hits[target]


def test_load_adds_concepts_to_those_of_the_store(tmp_path):
    from indexer.schema import ModelIdentity, point_id

    model = ModelIdentity("m", None, 4)
    vectors = np.eye(4, dtype=np.float32)

    def concept(name: str, row: int) -> dict:
        return {
            "name": name,
            "examples": [f"id:{row}"],
            "created": 1.0,
            "vectors": [vectors[row].tolist()],
        }

    with open_store(StoreSettings(location=str(tmp_path / "a"))) as store:
        store.bind_model(model)
        store.upsert([point_id("/p/0.jpg")], vectors[:1], [{"uri": "/p/0.jpg"}])
        store.write_document("concepts", {"format": 1, "concepts": [concept("Cat", 0)]})
        export_collection(store, tmp_path / "snap")
    with open_store(StoreSettings(location=str(tmp_path / "b"))) as store:
        store.bind_model(model)
        store.write_document(
            "concepts", {"format": 1, "concepts": [concept("cat", 1), concept("dog", 2)]}
        )
        report = load_collection(tmp_path / "snap", store)
        assert (report.concepts, report.rejected_documents, report.complete) == (["Cat"], [], True)
        # the snapshot's concept replaces the one of the same name; the others stay
        assert store.read_document("concepts") == {
            "format": 1,
            "concepts": [concept("Cat", 0), concept("dog", 2)],
        }
