"""The endpoints of the one face, through FastAPI's TestClient over a real anyshot-tiny collection:
info, concepts, tags, duplicates, snapshots by pages and shards, and the API key in OpenAPI.

Where the server answers what a local client answers, the expected reply is what the local
client (:class:`search.client.ImageSearch`) returns on a copy of the same store.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.config import build_settings
from indexer.parquet_store import read_shard
from indexer.schema import point_id
from search.api import create_app
from search.client import ImageSearch
from search.messages import (
    NEXT_AFTER_HEADER,
    PARQUET_MEDIA_TYPE,
    SHARD_CHECKSUM_HEADER,
    SHARD_POINTS_HEADER,
    TOTAL_POINTS_HEADER,
)

SHAPES = ["circle", "heart", "ring", "star"]
DUPLICATE_THRESHOLD = 0.95


def settings_for(store: Path, **api: object):
    settings = build_settings(store=str(store), workers=0)
    settings.api = type(settings.api).model_validate(api)
    return settings


def store_copy(tiny_store_template, folder: Path) -> Path:
    store = folder / "store"
    shutil.copytree(tiny_store_template[1], store)
    return store


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def expected(tiny_store_template, tmp_path_factory) -> dict:
    """What the local client answers on a copy of the collection."""
    store = store_copy(tiny_store_template, tmp_path_factory.mktemp("local"))
    uris = [str(path) for path in tiny_store_template[0].iterdir()]
    with ImageSearch(settings_for(store)) as local:
        return {
            "info": local.info().model_dump(),
            "duplicates": [g.to_dict() for g in local.duplicates(threshold=DUPLICATE_THRESHOLD)],
            "tags": local.tag(SHAPES).to_dict(),
            "tag_counts": local.tag_counts(),
            "ids": sorted(local.payloads([point_id(uri) for uri in uris])),
        }


@pytest.fixture(scope="module")
def served(tiny_store_template, tmp_path_factory) -> Iterator[tuple[TestClient, Path]]:
    """A server over its own copy of the collection, for the operations that only read."""
    store = store_copy(tiny_store_template, tmp_path_factory.mktemp("served"))
    with TestClient(create_app(settings_for(store))) as http:
        yield http, store


@pytest.fixture
def writable(tiny_store_template, tmp_path) -> Iterator[TestClient]:
    """A server over a fresh copy, for operations that write."""
    with TestClient(create_app(settings_for(store_copy(tiny_store_template, tmp_path)))) as http:
        yield http


# -- the collection -------------------------------------------------------------------------------


def test_info_is_what_the_local_client_says(served, expected) -> None:
    http, store = served
    info = http.get("/info").json()
    assert info == expected["info"] | {"location": str(store), "disk_bytes": info["disk_bytes"]}
    assert list(info)[:7] == [
        "collection",
        "location",
        "backend",
        "model",
        "points",
        "indexed_vectors",
        "disk_bytes",
    ]
    assert (info["points"], info["model"]["name"], info["disk_bytes"] > 0) == (
        120,
        "anyshot-tiny",
        True,
    )
    (listed,) = http.get("/collections").json()
    assert listed["name"] == info["collection"] and listed["points"] == 120


def test_duplicates_are_those_of_the_local_client(served, expected) -> None:
    http, _ = served
    reply = http.post("/duplicates", json={"threshold": DUPLICATE_THRESHOLD})
    assert reply.status_code == 200
    assert reply.json() == expected["duplicates"]
    assert len(expected["duplicates"]) == 3  # groups at this threshold with the patch-8 weights


def test_tagging_and_tag_counts_are_those_of_the_local_client(writable, expected) -> None:
    reply = writable.post("/tags", json={"labels": SHAPES})
    assert reply.status_code == 200, reply.text
    assert reply.json() == expected["tags"] | {"seconds": reply.json()["seconds"]}
    assert writable.get("/tags").json() == expected["tag_counts"]
    assert sum(expected["tag_counts"].values()) == 120
    hits = writable.get("/search", params={"q": "a ring", "filter": "tag=ring", "k": 200})
    assert {h["payload"]["tags"][0] for h in hits.json()["hits"]} == {"ring"}
    assert len(hits.json()["hits"]) == expected["tag_counts"]["ring"]


# -- concepts -------------------------------------------------------------------------------------


def test_concepts_are_defined_listed_searched_and_removed(writable, tiny_store_template) -> None:
    images = tiny_store_template[0]
    third = point_id(str(images / "ring-blue-008.png"))
    body = {
        "examples": [
            {"image": b64(images / "ring-blue-006.png"), "label": "ring-blue-006.png"},
            {"image": b64(images / "ring-blue-007.png"), "label": "ring-blue-007.png"},
            {"id": third},
        ]
    }
    defined = writable.put("/concepts/my rings", json=body)
    assert defined.status_code == 200, defined.text
    concept = defined.json()
    assert concept == {
        "name": "my rings",
        "examples": ["ring-blue-006.png", "ring-blue-007.png", f"id:{third}"],
        "created": concept["created"],
    }
    assert abs(concept["created"] - time.time()) < 60
    assert writable.get("/concepts").json() == [concept]

    found = writable.post("/search", json={"name": "My  Rings", "k": 3, "explain": True}).json()
    assert [Path(h["uri"]).name[:9] for h in found["hits"]] == ["ring-blue"] * 3
    assert found["explain"]["names"][0]["resolved_as"] == "concept"

    # Any character in a name, "/" included, escaped in the path.
    slashed = writable.put("/concepts/a%2Fb", json={"examples": [{"id": third}]})
    assert slashed.json()["name"] == "a/b"
    assert [c["name"] for c in writable.get("/concepts").json()] == ["a/b", "my rings"]
    removed = writable.delete("/concepts/a%2Fb")
    assert (removed.status_code, removed.content) == (204, b"")
    again = writable.delete("/concepts/a%2Fb")
    assert again.status_code == 400
    assert again.json() == {
        "error": "no concept named 'a/b' (registered: my rings)",
        "type": "QueryError",
    }


def test_a_concept_needs_a_name_and_usable_examples(served, tiny_store_template) -> None:
    http, _ = served
    example = {"image": b64(tiny_store_template[0] / "ring-blue-006.png")}
    blank = http.put("/concepts/%20%20", json={"examples": [example]})
    assert blank.json() == {"error": "a concept needs a name", "type": "QueryError"}
    unknown = http.put("/concepts/x", json={"examples": [{"id": 12345}]})
    assert unknown.json() == {
        "error": "no image with id 12345 in the collection",
        "type": "QueryError",
    }
    both = http.put("/concepts/x", json={"examples": [example | {"id": 1}]})
    assert both.status_code == 400 and "an image or an indexed image's id" in both.json()["error"]
    none = http.put("/concepts/x", json={"examples": []})
    assert none.status_code == 422
    assert http.get("/concepts").json() == []


# -- snapshots ------------------------------------------------------------------------------------


def test_export_pages_are_shards_that_rebuild_the_collection(served, expected, tmp_path) -> None:
    http, _ = served
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    after: str | None = None
    sizes = []
    while True:
        params = {"limit": 50} | ({"after": after} if after is not None else {})
        page = http.get("/export/points", params=params)
        if page.status_code == 204:
            break
        assert page.status_code == 200
        assert page.headers["content-type"] == PARQUET_MEDIA_TYPE
        assert page.headers[TOTAL_POINTS_HEADER] == "120"
        shard_path = snapshot / f"part-{len(sizes):020d}-test.parquet"
        shard_path.write_bytes(page.content)
        shard = read_shard(shard_path)  # every check of a load: page and value checksums
        assert shard.checksum == page.headers[SHARD_CHECKSUM_HEADER]
        assert page.headers[SHARD_POINTS_HEADER] == str(len(shard.ids))
        sizes.append(len(shard.ids))
        after = page.headers.get(NEXT_AFTER_HEADER)
        if after is None:
            break
        assert int(after) == int(shard.ids[-1])
    assert sizes == [50, 50, 20]
    ids = [int(i) for path in sorted(snapshot.iterdir()) for i in read_shard(path).ids]
    assert ids == sorted(ids) == expected["ids"]
    last = http.get("/export/points", params={"after": ids[-1]})
    assert (last.status_code, last.content) == (204, b"")
    assert last.headers[SHARD_POINTS_HEADER] == "0"

    documents = http.get("/export/documents").json()
    assert documents == {"format": 1, "model": expected["info"]["model"], "documents": {}}
    with ImageSearch(settings_for(tmp_path / "rebuilt")) as rebuilt:
        report = rebuilt.load(snapshot)
        assert (report.loaded, report.complete, report.points) == (120, True, 120)
        assert sorted(rebuilt.payloads(ids)) == ids


def test_a_snapshot_loads_into_a_served_empty_store_shard_by_shard(
    tiny_store_template, tmp_path
) -> None:
    images = tiny_store_template[0]
    snapshot = tmp_path / "snapshot"
    with ImageSearch(settings_for(store_copy(tiny_store_template, tmp_path))) as local:
        local.add_concept("blue rings", [images / "ring-blue-006.png"])
        assert local.export(snapshot) == 120
    (shard,) = sorted(snapshot.glob("part-*.parquet"))
    documents = json.loads((snapshot / "documents.json").read_text())

    with TestClient(create_app(settings_for(tmp_path / "empty"))) as http:
        assert http.get("/search", params={"q": "a blue ring"}).status_code == 404
        loaded = http.post(
            "/load",
            params={"trust": str(images)},
            content=shard.read_bytes(),
            headers={"content-type": PARQUET_MEDIA_TYPE},
        )
        assert loaded.status_code == 200, loaded.text
        assert loaded.json() == {
            "loaded": 120,
            "rejected": 0,
            "rejected_rows": [],
            "bad_shards": [],
            "shards": 1,
            "unchecked_shards": 0,
            "points": 120,
            "trusted": [os.path.realpath(images)],
            "concepts": [],
            "rejected_documents": [],
        }
        concepts = http.post("/load/documents", json=documents).json()
        assert (concepts["loaded"], concepts["concepts"], concepts["points"]) == (
            0,
            ["blue rings"],
            120,
        )
        assert [c["name"] for c in http.get("/concepts").json()] == ["blue rings"]
        hits = http.get("/search", params={"name": "blue rings", "k": 3}).json()["hits"]
        assert Path(hits[0]["uri"]).name.startswith("ring-blue")
        assert http.get(hits[0]["image_url"]).status_code == 200  # the trusted folder


# -- index runs -----------------------------------------------------------------------------------


def test_a_failed_index_run_names_its_error_class(served, tmp_path) -> None:
    http, _ = served
    job = http.post("/index", json={"source": str(tmp_path / "nothing-here")}).json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = http.get(f"/index/{job['id']}").json()
    assert (job["state"], job["error_type"]) == ("failed", "SourceError")
    assert "nothing-here" in job["error"]


# -- OpenAPI --------------------------------------------------------------------------------------


NEW_OPERATIONS = {
    ("/info", "get"): (None, "InfoBody"),
    ("/concepts", "get"): (None, None),
    ("/concepts/{name}", "put"): ("ConceptRequest", "ConceptBody"),
    ("/concepts/{name}", "delete"): (None, None),
    ("/tags", "post"): ("TagRequest", "TagReportBody"),
    ("/tags", "get"): (None, None),
    ("/duplicates", "post"): ("DuplicatesRequest", None),
    ("/export/points", "get"): (None, None),
    ("/export/documents", "get"): (None, "SnapshotDocumentsBody"),
    ("/load", "post"): (None, "LoadReportBody"),
    ("/load/documents", "post"): ("SnapshotDocumentsBody", "LoadReportBody"),
    ("/search", "post"): ("SearchRequest", "SearchReply"),
    ("/healthz", "get"): (None, "HealthBody"),
}


def schema_name(content: dict) -> str | None:
    ref = content.get("application/json", {}).get("schema", {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def test_openapi_documents_the_new_operations_with_the_shared_bodies(served) -> None:
    http, _ = served
    schema = http.get("/openapi.json").json()
    for (path, method), (request, reply) in NEW_OPERATIONS.items():
        operation = schema["paths"][path][method]
        if request is not None:
            assert schema_name(operation["requestBody"]["content"]) == request, path
        if reply is not None:
            assert schema_name(operation["responses"]["200"]["content"]) == reply, path
    load_body = schema["paths"]["/load"]["post"]["requestBody"]["content"]
    assert list(load_body) == [PARQUET_MEDIA_TYPE]
    assert (
        PARQUET_MEDIA_TYPE
        in schema["paths"]["/export/points"]["get"]["responses"]["200"]["content"]
    )
    assert "securitySchemes" not in schema.get("components", {})  # no key: nothing to send


def test_the_api_key_is_a_security_scheme_and_still_enforced(tiny_store_template, tmp_path) -> None:
    store = store_copy(tiny_store_template, tmp_path)
    with TestClient(create_app(settings_for(store, api_key="s3cret"))) as http:
        schema = http.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"] == {
            "APIKeyHeader": {
                "type": "apiKey",
                "description": "The server's API key (anyshot serve --api-key, "
                "ANYSHOT_API__API_KEY).",
                "in": "header",
                "name": "X-API-Key",
            },
            "APIKeyQuery": {
                "type": "apiKey",
                "description": "The API key as a query parameter, for links that cannot carry "
                "a header.",
                "in": "query",
                "name": "api_key",
            },
        }
        either = [{"APIKeyHeader": []}, {"APIKeyQuery": []}]
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                wanted = None if path == "/healthz" else either
                assert operation.get("security") == wanted, (method, path)
        assert http.get("/info").status_code == 401
        assert http.get("/info", headers={"X-API-Key": "s3cret"}).json()["points"] == 120
        assert http.get("/info", params={"api_key": "s3cret"}).status_code == 200
