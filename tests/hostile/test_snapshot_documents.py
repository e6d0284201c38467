"""Crafted ``documents.json`` in snapshots: concepts are checked like rows, other documents refused.

``anyshot export`` writes the collection's concepts beside its shards; ``anyshot load`` takes
them only after the same kind of checks as the rows (dimension, finite unit vectors, sane
names), and never takes the store's trusted roots or any other document from a snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.config import StoreSettings
from indexer.parquet_store import ParquetShardWriter
from indexer.schema import ModelIdentity, point_id
from indexer.stores import open_store
from indexer.transfer import export_collection, load_collection
from indexer.trusted_roots import read_trusted_roots, trust_roots
from search.cli import main

DIM = 8
MODEL = ModelIdentity(name="snapshot-model", pretrained=None, dim=DIM)


INFINITE_ROW = "a row with an infinite number"


def unit(seed: int) -> list[float]:
    row = np.random.default_rng(seed).normal(size=DIM)
    return (row / np.linalg.norm(row)).tolist()


def concept(name: str, vectors: list, **extra) -> dict:
    return {"name": name, "examples": ["id:1"], "created": 1.7e9, "vectors": vectors} | extra


def snapshot(folder: Path, documents: dict, *, model: ModelIdentity = MODEL) -> Path:
    """A snapshot of two good rows and a documents file as given."""
    uris = ["/photos/a.jpg", "/photos/b.jpg"]
    vectors = np.asarray([unit(1), unit(2)], dtype=np.float32)
    ParquetShardWriter(folder, model).write(
        [point_id(u) for u in uris], vectors, [{"uri": u} for u in uris]
    )
    content = {"format": 1, "model": model.to_dict(), "documents": documents}
    # JSON has no infinity: a crafted file writes a number too large for a float instead.
    text = json.dumps(content).replace(f'"{INFINITE_ROW}"', "[1e400, 0, 0, 0, 0, 0, 0, 0]")
    (folder / "documents.json").write_text(text)
    return folder


def load(folder: Path, tmp_path: Path):
    with open_store(StoreSettings(location=str(tmp_path / "store"), reserve_free_mb=0)) as store:
        report = load_collection(folder, store)
        return report, store.read_document("concepts"), read_trusted_roots(store)


CRAFTED = [
    ("short", [unit(3)[:4]], "a vector is not a list of 8 numbers (the collection's dimension)"),
    ("long", [[*unit(3), 0.0]], "a vector is not a list of 8 numbers (the collection's dimension)"),
    ("infinite", [INFINITE_ROW], "vector with NaN or infinite values"),
    ("not unit", [[0.5] * DIM], "vector norm 1.414, not 1 (embeddings are unit vectors)"),
    ("texts", [["0.1"] * DIM], "a vector holds something other than numbers"),
    ("booleans", [[True] + [False] * 7], "a vector holds something other than numbers"),
    ("none", [], "vectors is not a list of 1 to 1000 vectors"),
    ("flat", unit(3), "a vector is not a list of 8 numbers (the collection's dimension)"),
]


def test_crafted_concepts_are_reported_and_never_stored(tmp_path) -> None:
    items = [concept(name, vectors) for name, vectors, _ in CRAFTED]
    items += [
        concept("", [unit(4)]),
        concept("bad examples", [unit(4)], examples=[1, 2]),
        concept("bad time", [unit(4)], created="yesterday"),
        "not an object",
        concept("good", [unit(5), unit(6)]),
    ]
    folder = snapshot(tmp_path / "snap", {"concepts": {"format": 1, "concepts": items}})
    report, stored, _ = load(folder, tmp_path)
    assert report.loaded == 2
    assert report.concepts == ["good"]
    assert report.rejected_documents == [
        {"document": "concepts", "name": name, "reason": reason} for name, _, reason in CRAFTED
    ] + [
        {"document": "concepts", "name": name, "reason": reason}
        for name, reason in (
            ("", "the name is not a text of 1 to 1000 characters"),
            ("bad examples", "an example is not a text of at most 8192 characters"),
            ("bad time", "created is not a time"),
            (None, "not a concept (an object with name, examples and vectors)"),
        )
    ]
    assert not report.complete
    assert [item["name"] for item in stored["concepts"]] == ["good"]


def test_nan_written_as_a_json_constant_refuses_the_file(tmp_path) -> None:
    folder = snapshot(tmp_path / "snap", {})
    (folder / "documents.json").write_text(
        '{"format": 1, "model": {"name": "snapshot-model", "pretrained": null, "dim": 8}, '
        '"documents": {"concepts": {"format": 1, "concepts": [{"name": "n", "vectors": '
        "[[NaN, 0, 0, 0, 0, 0, 0, 0]]}]}}}"
    )
    report, stored, _ = load(folder, tmp_path)
    assert report.loaded == 2 and report.concepts == [] and stored is None
    assert report.rejected_documents == [
        {
            "document": "documents.json",
            "name": None,
            "reason": "not valid JSON: NaN is not a number",
        }
    ]


def test_a_snapshot_never_brings_trusted_roots_or_other_documents(tmp_path) -> None:
    documents = {
        "trusted-roots": {"format": 1, "roots": ["/"]},
        "settings": {"api_key": "x"},
        "concepts": {"format": 1, "concepts": [concept("good", [unit(5)])]},
    }
    report, stored, trusted = load(snapshot(tmp_path / "snap", documents), tmp_path)
    assert trusted == ()
    assert report.concepts == ["good"] and len(stored["concepts"]) == 1
    reason = "a snapshot may not carry this document: it stays with its store"
    assert report.rejected_documents == [
        {"document": "trusted-roots", "name": None, "reason": reason},
        {"document": "settings", "name": None, "reason": reason},
    ]


def test_concepts_of_another_model_are_refused(tmp_path) -> None:
    other = ModelIdentity(name="other-model", pretrained=None, dim=DIM)
    folder = snapshot(tmp_path / "snap", {})
    content = json.loads((folder / "documents.json").read_text())
    content["model"] = other.to_dict()
    content["documents"] = {"concepts": {"format": 1, "concepts": [concept("c", [unit(5)])]}}
    (folder / "documents.json").write_text(json.dumps(content))
    report, stored, _ = load(folder, tmp_path)
    assert (report.loaded, report.concepts, stored) == (2, [], None)
    assert report.rejected_documents == [
        {
            "document": "concepts",
            "name": None,
            "reason": "concepts of model 'other-model', but the store holds 'snapshot-model'",
        }
    ]


@pytest.mark.parametrize("kind", ["fifo", "folder", "junk", "array"])
def test_a_documents_file_that_is_no_json_object_is_reported(tmp_path, kind) -> None:
    folder = snapshot(tmp_path / "snap", {})
    path = folder / "documents.json"
    path.unlink()
    reasons = {
        "fifo": "not a regular file (a FIFO)",
        "folder": "not a regular file (a folder)",
        "junk": "not valid JSON: Expecting value: line 1 column 1 (char 0)",
        "array": "not a JSON object",
    }
    if kind == "fifo":
        os.mkfifo(path)  # a reader that blocked on it would hang the load
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_text("junk" if kind == "junk" else "[1, 2]")
    report, _, _ = load(folder, tmp_path)
    assert report.loaded == 2
    assert report.rejected_documents == [
        {"document": "documents.json", "name": None, "reason": reasons[kind]}
    ]


def test_export_writes_concepts_but_never_trusted_roots(tmp_path) -> None:
    with open_store(StoreSettings(location=str(tmp_path / "a"), reserve_free_mb=0)) as source:
        source.bind_model(MODEL)
        source.upsert(
            [point_id("/p/a.jpg")], np.asarray([unit(1)], np.float32), [{"uri": "/p/a.jpg"}]
        )
        trust_roots(source, ["/p"])
        source.write_document("concepts", {"format": 1, "concepts": [concept("c", [unit(5)])]})
        export_collection(source, tmp_path / "snap")
    content = json.loads((tmp_path / "snap" / "documents.json").read_text())
    assert list(content["documents"]) == ["concepts"]
    assert content["model"] == MODEL.to_dict()


def test_cli_load_reports_rejected_concepts_and_exits_1(tmp_path) -> None:
    items = [concept("good", [unit(5)]), concept("bad", [INFINITE_ROW])]
    folder = snapshot(tmp_path / "snap", {"concepts": {"format": 1, "concepts": items}})
    env = {"ANYSHOT_STORE__RESERVE_FREE_MB": "0"}
    result = CliRunner(env=env).invoke(main, ["load", str(folder), "--store", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "rejected concept 'bad': vector with NaN or infinite values",
        "loaded 2 rows and 1 concepts; rejected 0 rows and 0 of 1 shards; the store holds 2 images",
    ]
    assert result.stderr.strip() == (
        f"error: 0 rows and 0 shards and 1 concepts or documents of {folder} were rejected "
        "(see the lines above); the rest was loaded"
    )


def test_the_carried_concepts_document_is_the_one_the_registry_writes() -> None:
    from indexer import snapshot_documents
    from search import concepts

    assert snapshot_documents.CONCEPTS_DOCUMENT == concepts.DOCUMENT
    assert snapshot_documents.CONCEPTS_FORMAT == concepts.FORMAT_VERSION
