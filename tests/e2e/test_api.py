"""The HTTP API through FastAPI's TestClient, over a real collection built with anyshot-tiny."""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from shape_collection import SHAPE_TARGETS, shape_of, write_shape_images

from indexer.config import build_settings
from indexer.errors import StoreLockedError
from indexer.stores.edge import EdgeStore
from indexer.stores.opening import open_store
from indexer.trusted_roots import trust_roots
from search.api import create_app


def trusting(store: Path, *roots: Path) -> Path:
    """``store`` with ``roots`` among its trusted roots, as an index run of them records."""
    with open_store(build_settings(store=str(store)).store) as opened:
        trust_roots(opened, [os.path.realpath(root) for root in roots])
    return store


@pytest.fixture(scope="module")
def collection(tiny_store_template, tmp_path_factory) -> tuple[Path, Path]:
    """(images, store): a private copy of the indexed store for this module."""
    images, template = tiny_store_template
    store = tmp_path_factory.mktemp("api") / "store"
    shutil.copytree(template, store)
    return images, trusting(store, images)


def make_settings(store: Path, **api: object):
    settings = build_settings(store=str(store), workers=0)
    settings.api = type(settings.api).model_validate(api)
    return settings


@pytest.fixture(scope="module")
def http(collection) -> Iterator[TestClient]:
    _, store = collection
    with TestClient(create_app(make_settings(store))) as client:
        yield client


def png_bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_health_and_collections(http: TestClient) -> None:
    version = importlib.metadata.version("anyshot")
    assert http.get("/healthz").json() == {"status": "ok", "service": "anyshot", "version": version}
    (collection,) = http.get("/collections").json()
    assert collection["name"] == "images"
    assert collection["points"] == 120
    assert collection["model"]["name"] == "anyshot-tiny"
    assert collection["disk_bytes"] > 0


@pytest.mark.parametrize(("shape", "colour"), SHAPE_TARGETS)
def test_get_search_by_description_finds_the_shape(http: TestClient, shape, colour) -> None:
    reply = http.get("/search", params={"q": f"a {colour} {shape}", "k": 3})
    assert reply.status_code == 200
    hits = reply.json()["hits"]
    found = [shape_of(h["uri"]) for h in hits]
    assert found[0] == (shape, colour)
    assert found.count((shape, colour)) >= 2 and all(c == colour for _, c in found)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert hits[0]["image_url"] == f"/images/{hits[0]['id']}"
    assert hits[0]["thumbnail_url"] == f"/thumbs/{hits[0]['id']}"


def test_post_search_by_base64_image_finds_it_first(http: TestClient, collection) -> None:
    images, _ = collection
    example = images / "ring-blue-006.png"
    body = {"image": base64.b64encode(png_bytes(example)).decode(), "k": 3}
    hits = http.post("/search", json=body).json()["hits"]
    assert hits[0]["uri"] == str(example)
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_upload_search_finds_the_image_first(http: TestClient, collection) -> None:
    images, _ = collection
    example = images / "star-black-009.png"
    reply = http.post(
        "/search/image",
        files={"file": ("query.png", png_bytes(example), "image/png")},
        data={"k": "2"},
    )
    assert reply.status_code == 200, reply.text
    hits = reply.json()["hits"]
    assert len(hits) == 2 and hits[0]["uri"] == str(example)


def test_search_by_id_name_and_own_image_url(http: TestClient) -> None:
    first = http.get("/search", params={"q": "a red circle", "k": 1}).json()["hits"][0]
    by_id = http.get("/search", params={"id": first["id"], "k": 2}).json()["hits"]
    assert by_id[0]["id"] == first["id"]
    by_url = http.post(
        "/search", json={"image_url": f"http://testserver/images/{first['id']}", "k": 1}
    ).json()["hits"]
    assert by_url[0]["id"] == first["id"]
    as_image = http.post("/search", json={"image": f"http://x/images/{first['id']}", "k": 1})
    assert as_image.json()["hits"][0]["id"] == first["id"]
    assert http.post("/search", json={"image": "https://example.com/a.jpg"}).status_code == 400
    by_name = http.post("/search", json={"name": "heart", "k": 3, "explain": True}).json()
    assert len(by_name["hits"]) == 3
    assert by_name["explain"]["names"][0]["resolved_as"] == "templates"
    assert http.get("/search", params={"name": "heart"}).json()["explain"] is None


def test_expansion_is_asked_for_per_request(http: TestClient) -> None:
    def expansion(reply: dict) -> dict:
        return reply["explain"]["expansion"]

    query = {"q": "a blue ring", "k": 3, "explain": True}
    assert expansion(http.get("/search", params=query).json())["applied"] is False
    on = http.get("/search", params=query | {"expand": True}).json()
    assert expansion(on)["applied"] is True and len(expansion(on)["from"]) >= 1
    body = {"text": "a blue ring", "k": 3, "explain": True, "expand": True}
    assert expansion(http.post("/search", json=body).json())["applied"] is True


def test_negatives_filters_and_weighted_parts(http: TestClient, collection) -> None:
    images, _ = collection
    reply = http.get(
        "/search",
        params={"q": "a red shape", "not": ["a circle", "a star"], "k": 5, "explain": True},
    ).json()
    assert [(p["kind"], p["value"], p["weight"]) for p in reply["explain"]["parts"]] == [
        ("text", "a red shape", 1.0),
        ("text", "a circle", -1.0),
        ("text", "a star", -1.0),
    ]
    target = http.get("/search", params={"q": "a black star", "k": 1}).json()["hits"][0]
    only = http.get("/search", params={"q": "a red circle", "filter": f"id={target['id']}"})
    assert [h["id"] for h in only.json()["hits"]] == [target["id"]]
    folder = http.get(
        "/search", params={"q": "a red circle", "filter": [f"folder={images}", "format=PNG"]}
    ).json()["hits"]
    assert len(folder) == 10 and all(h["payload"]["format"] == "PNG" for h in folder)
    assert http.get("/search", params={"q": "x", "filter": "colour=red"}).status_code == 400

    example = (images / "ring-blue-006.png").read_bytes()
    parts = [
        {"kind": "image", "value": base64.b64encode(example).decode(), "weight": 2},
        {"kind": "text", "value": "a blue ring", "weight": 1},
        {"kind": "text", "value": "a red circle", "weight": -0.5},
    ]
    hits = http.post("/search", json={"parts": parts, "k": 3}).json()["hits"]
    assert hits[0]["uri"] == str(images / "ring-blue-006.png")


def test_offset_pages_through_the_results(http: TestClient) -> None:
    ranked = http.get("/search", params={"q": "a blue ring", "k": 6}).json()["hits"]
    page = http.get("/search", params={"q": "a blue ring", "k": 3, "offset": 3}).json()["hits"]
    assert [h["id"] for h in page] == [h["id"] for h in ranked[3:]]


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/search", None, 400),  # no query at all
        ("GET", "/search?q=cat&k=0", None, 422),
        ("GET", "/search?q=cat&k=1001", None, 422),
        ("GET", "/search?q=cat&id=-1", None, 422),
        ("GET", "/search?q=%20", None, 400),
        ("POST", "/search", {"text": "a", "parts": [{"kind": "id", "value": "x"}]}, 400),
        ("POST", "/search", {"parts": [{"kind": "id", "value": -807798721}]}, 400),
        ("POST", "/search", {"parts": [{"kind": "id", "value": 2**64}]}, 400),
        ("GET", "/search?q=cat&filter=id%3D-5", None, 400),
        ("POST", "/search", {"image": "not base64 at all!"}, 400),
        ("POST", "/search", {"image": base64.b64encode(b"no image").decode()}, 400),
        ("POST", "/search", {"image_url": "/etc/passwd"}, 400),
        ("POST", "/search", {"image_url": "file:///etc/passwd"}, 400),
        ("POST", "/search", {"image_url": "http://example.com/cat.jpg"}, 400),
        ("POST", "/search", {"text": "cat", "k": 5000}, 400),
        ("POST", "/search", {"text": "cat", "unknown": 1}, 422),
        ("POST", "/search", {"id": 12345}, 400),
        # Ids 0..2**64-1 can name a point (indexer.schema): beyond, the request is malformed.
        ("POST", "/search", {"id": 2**64 - 1}, 400),
        ("POST", "/search", {"id": 2**64}, 422),
        ("GET", f"/search?id={2**64 - 1}", None, 400),
        ("GET", f"/search?id={2**64}", None, 422),
        ("GET", f"/images/{2**64 - 1}", None, 404),
        ("GET", f"/images/{2**64}", None, 422),
        ("GET", "/images/12345", None, 404),
        ("GET", "/images/..%2F..%2Fetc%2Fpasswd", None, 404),
        ("GET", "/images/%2Fetc%2Fpasswd", None, 404),
        ("GET", "/thumbs/abc", None, 422),
        ("GET", "/thumbs/12345", None, 404),
        ("GET", "/index/nope", None, 404),
        ("POST", "/index", {"source": "relative/folder"}, 400),
        ("GET", "/no-such-endpoint", None, 404),
    ],
)
def test_bad_requests_get_a_json_error(http: TestClient, method, url, body, status) -> None:
    reply = http.request(method, url, json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()
    assert set(error) == {"error", "type"} and error["error"]


def test_images_are_served_by_id_only(http: TestClient, collection) -> None:
    images, _ = collection
    hit = http.get("/search", params={"q": "a cyan heart", "k": 1}).json()["hits"][0]
    reply = http.get(f"/images/{hit['id']}")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/png"
    assert reply.content == Path(hit["uri"]).read_bytes()
    assert Path(hit["uri"]).parent == images


def test_thumbnails_are_jpeg_and_cached_in_the_store(http: TestClient, collection) -> None:
    _, store = collection
    hit = http.get("/search", params={"q": "a red circle", "k": 1}).json()["hits"][0]
    reply = http.get(f"/thumbs/{hit['id']}", params={"size": 32})
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(reply.content)).size == (32, 32)
    cached = list((store / "thumbs").rglob(f"{hit['id']}-32-*.jpg"))
    assert len(cached) == 1
    assert http.get(f"/thumbs/{hit['id']}", params={"size": 32}).content == reply.content
    assert http.get(f"/thumbs/{hit['id']}", params={"size": 5000}).status_code == 422


# -- clip-back ------------------------------------------------------------------------------------


def clip_front_request(http: TestClient, path: str, body: dict) -> list:
    """POST as clip-front does: JSON.stringify'd body, browser default text/plain type."""
    reply = http.post(
        path, content=json.dumps(body), headers={"Content-Type": "text/plain;charset=UTF-8"}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_clip_front_request_is_answered(http: TestClient) -> None:
    assert http.get("/indices-list").json() == ["images"]
    results = clip_front_request(
        http,
        "/knn-service",
        {
            "text": "a blue ring",
            "image": None,
            "image_url": None,
            "embedding_input": None,
            "modality": "image",
            "num_images": 4,
            "indice_name": "images",
            "num_result_ids": 10,
            "use_mclip": False,
            "deduplicate": True,
            "use_safety_model": True,
            "use_violence_detector": True,
            "aesthetic_score": "",
            "aesthetic_weight": "0.5",
        },
    )
    assert len(results) == 10
    assert all(isinstance(r["id"], int) and 0 <= r["id"] < 2**53 for r in results)
    similarities = [r["similarity"] for r in results]
    assert similarities == sorted(similarities, reverse=True)
    first = results[0]
    assert shape_of(first["image_path"]) == ("ring", "blue")
    assert first["caption"] == Path(first["image_path"]).name
    assert first["url"] == f"http://testserver/images/{first['id']}"
    assert Image.open(io.BytesIO(base64.b64decode(first["image"]))).format == "JPEG"
    assert all("url" in r for r in results[:4]) and all("url" not in r for r in results[4:])

    later = [r["id"] for r in results[4:]]
    metadata = clip_front_request(http, "/metadata", {"ids": later, "indice_name": "images"})
    assert [m["id"] for m in metadata] == later
    assert all(m["metadata"]["url"].endswith(f"/images/{m['id']}") for m in metadata)

    # clip-front's "search by this image" sends the result's url back
    again = clip_front_request(
        http,
        "/knn-service",
        {"image_url": first["url"], "modality": "image", "num_images": 1, "indice_name": "images"},
    )
    assert again[0]["id"] == first["id"]


def test_clip_back_image_and_embedding_queries(http: TestClient, collection) -> None:
    images, _ = collection
    example = images / "heart-cyan-003.png"
    by_image = clip_front_request(
        http,
        "/knn-service",
        {"image": base64.b64encode(example.read_bytes()).decode(), "num_images": 2},
    )
    assert by_image[0]["image_path"] == str(example)
    bad = http.post("/knn-service", content=json.dumps({"embedding_input": [1.0, 2.0]}))
    assert bad.status_code == 400
    assert http.post("/knn-service", content=b"{not json").status_code == 400
    assert http.post("/knn-service", content=json.dumps({"text": "x", "indice_name": "other"}))
    wrong_index = http.post(
        "/knn-service", content=json.dumps({"text": "x", "indice_name": "other"})
    )
    assert wrong_index.status_code == 404


# -- access and limits ----------------------------------------------------------------------------


def private_store(tiny_store_template, tmp_path: Path) -> Path:
    """A fresh copy of the collection, for an app of its own (one process opens a store)."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store_template[1], store)
    return trusting(store, tiny_store_template[0])


def test_api_key_guards_everything_but_health(tiny_store_template, tmp_path) -> None:
    store = private_store(tiny_store_template, tmp_path)
    with TestClient(create_app(make_settings(store, api_key="s3cret"))) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200  # the page asks for the key itself
        refused = client.get("/search", params={"q": "a red circle"})
        assert refused.status_code == 401 and refused.json()["type"] == "Unauthorized"
        assert client.get("/collections", headers={"X-API-Key": "wrong"}).status_code == 401
        ok = client.get("/search", params={"q": "a red circle"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        hit = ok.json()["hits"][0]
        assert client.get(f"/thumbs/{hit['id']}?api_key=s3cret").status_code == 200


def test_cors_and_upload_limit(tiny_store_template, tmp_path) -> None:
    store = private_store(tiny_store_template, tmp_path)
    settings = make_settings(store, cors_origins=["http://front.example"], max_upload_bytes=2000)
    with TestClient(create_app(settings)) as client:
        preflight = client.options(
            "/knn-service",
            headers={
                "Origin": "http://front.example",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "http://front.example"
        big = client.post("/search/image", files={"file": ("x.png", b"0" * 5000, "image/png")})
        assert big.status_code == 413 and big.json()["type"] == "TooLarge"


def test_page_is_served(http: TestClient) -> None:
    page = http.get("/")
    assert page.status_code == 200 and '<form id="search-form"' in page.text
    assert http.get("/static/app.js").status_code == 200
    assert http.get("/docs").status_code == 200


# -- indexing while searching ---------------------------------------------------------------------


def test_searches_answer_while_the_server_indexes(tiny_store_template, tmp_path) -> None:
    """POST /index writes into the open embedded store while searches go on in other threads."""
    _, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    more = tmp_path / "more"
    write_shape_images(more, 300, seed=11)
    settings = make_settings(store)
    settings.index = settings.index.model_copy(update={"batch_size": 8, "workers": 0})
    with TestClient(create_app(settings)) as client:
        job = client.post("/index", json={"source": str(more)})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        answered_mid_run = 0
        deadline = time.monotonic() + 120
        while True:
            reply = client.get("/search", params={"q": "a red circle", "k": 5})
            assert reply.status_code == 200, reply.text
            state = client.get(f"/index/{job_id}").json()
            if state["state"] == "running" and 0 < state["done"] < state["total"]:
                answered_mid_run += 1
            if state["state"] in ("done", "failed") or time.monotonic() > deadline:
                break
        assert state["state"] == "done", state
        assert state["report"]["indexed"] == 300
        assert answered_mid_run >= 1
        assert client.get("/collections").json()[0]["points"] == 420
        hits = client.get("/search", params={"q": "a red circle", "k": 3}).json()["hits"]
        assert all(shape_of(h["uri"]) == ("circle", "red") for h in hits)


def test_a_server_on_an_empty_folder_holds_it_and_indexes_into_it(tmp_path) -> None:
    images = tmp_path / "images"
    write_shape_images(images, 20, seed=5)
    store = tmp_path / "new-store"
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    with TestClient(create_app(settings)) as client:
        assert client.get("/search", params={"q": "a red circle"}).status_code == 404
        with pytest.raises(StoreLockedError):
            EdgeStore(store).hold()  # nobody else may create a collection under the server
        job = client.post("/index", json={"source": str(images)}).json()
        deadline = time.monotonic() + 120
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/index/{job['id']}").json()
        assert job["state"] == "done" and job["report"]["indexed"] == 20
        assert len(client.get("/search", params={"q": "a red circle", "k": 5}).json()["hits"]) == 5
    assert not (store / "server.json").exists()


def test_concurrent_searches_share_the_engine(tiny_store_template, tmp_path) -> None:
    """Requests run in a thread pool: many distinct texts through a tiny LRU, no errors."""
    from concurrent.futures import ThreadPoolExecutor

    settings = make_settings(private_store(tiny_store_template, tmp_path))
    settings.search = settings.search.model_copy(update={"text_cache_size": 2})
    texts = [f"a {colour} {shape}" for shape, colour in SHAPE_TARGETS for _ in range(2)] * 6
    with TestClient(create_app(settings)) as client:

        def search(text: str) -> int:
            return client.get("/search", params={"q": text, "k": 3}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(search, texts)) == {200}
