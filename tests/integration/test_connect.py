"""``search.connect``: one call, the right client for each kind of location.

A Qdrant server cannot run here: the URL routing is tested against a local HTTP server that
answers as Qdrant does (``/healthz``, its version, a collection that does not exist), and
qdrant-client's code path with ``:memory:``. The routing to a running ``anyshot serve`` is
tested against a real uvicorn serving the app (and, in tests/e2e, a real ``anyshot serve``).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from shape_collection import free_port, running_uvicorn, shape_of

from indexer.config import Settings, build_settings
from indexer.errors import StoreLockedError, StoreServedError
from indexer.stores.edge import EdgeStore
from indexer.stores.holder import advertise_server
from search import ImageSearch, RemoteImageSearch, connect

CLIENT = importlib.metadata.version("qdrant-client")
"""The version the fake server gives itself: the one qdrant-client checks it against."""


@contextmanager
def qdrant_like_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that answers the calls qdrant-client makes first as Qdrant would:
    ``GET /healthz`` (plain text), ``GET /`` (its version) and whether a collection exists
    (it does not). Yields its URL and the paths it was asked for."""
    asked: list[str] = []
    replies = {
        "/healthz": (b"healthz check passed", "text/plain"),
        "/": (json.dumps({"title": "qdrant - vector search engine", "version": CLIENT}), None),
        "/collections/images/exists": (
            json.dumps({"result": {"exists": False}, "status": "ok", "time": 0.0}),
            None,
        ),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            asked.append(path)
            body, kind = replies.get(path, (b"", None))
            if not body:
                self.send_error(404)
                return
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind or "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_memory_is_searched_in_this_process(image_folder, random_model_name) -> None:
    settings = build_settings(model=random_model_name, workers=0)
    with connect(":memory:", settings=settings) as client:
        assert isinstance(client, ImageSearch)
        assert client.index(image_folder["red"].parent).indexed == 6
        hits = client.search("a red square", k=3)
    assert len(hits) == 3
    assert all(isinstance(h.id, int) and h.uri and isinstance(h.score, float) for h in hits)


def test_a_folder_nobody_holds_is_opened_here(tiny_store_template, tmp_path) -> None:
    _, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    with connect(store) as client:
        assert isinstance(client, ImageSearch)
        hits = client.search("a cyan heart", k=3)
    assert [shape_of(h.uri) for h in hits] == [("heart", "cyan")] * 3


def test_a_url_that_is_not_anyshot_is_searched_as_a_qdrant_server() -> None:
    with qdrant_like_server() as (url, asked), connect(url) as client:
        assert isinstance(client, ImageSearch)
        details = client.info()
        deadline = time.monotonic() + 10
        while "/" not in asked and time.monotonic() < deadline:
            time.sleep(0.05)  # qdrant-client checks the server's version in a thread of its own
    assert (details.backend, details.points, details.model) == ("qdrant-client", 0, None)
    # The probe asked /healthz; then qdrant-client itself talked to the "server".
    assert asked[0] == "/healthz"
    assert {"/", "/collections/images/exists"} <= set(asked)


def test_a_url_of_anyshot_serve_gets_the_remote_client(tiny_store_template, tmp_path) -> None:
    from search.api import create_app

    _, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    settings = build_settings(store=str(store))
    with running_uvicorn(create_app(settings), free_port()) as url, connect(url) as client:
        assert isinstance(client, RemoteImageSearch)
        assert client.location == url
        hits = client.search("a cyan heart", k=3)
    assert [shape_of(h.uri) for h in hits] == [("heart", "cyan")] * 3


def test_a_folder_held_by_anyshot_serve_gets_the_remote_client(
    tiny_store_template, tmp_path
) -> None:
    from search.api import create_app

    _, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    settings = build_settings(store=str(store))
    port = free_port()
    advertised = f"http://127.0.0.1:{port}"
    app = create_app(settings, advertise_url=advertised)
    with running_uvicorn(app, port), connect(store) as client:
        assert isinstance(client, RemoteImageSearch)
        assert client.location == advertised
        hits = client.search("a cyan heart", k=3)
        held = client.info()
    assert [shape_of(h.uri) for h in hits] == [("heart", "cyan")] * 3
    with connect(store) as client:  # the server is gone: opened here again
        assert isinstance(client, ImageSearch)
        assert client.info() == held


def test_an_empty_folder_held_by_anyshot_serve_gets_the_remote_client(
    image_folder, tmp_path
) -> None:
    """A server holds an empty folder from its start (it will index into it): a client must
    find it there, not open the folder beside it."""
    from search.api import create_app

    store = tmp_path / "empty-store"
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    port = free_port()
    advertised = f"http://127.0.0.1:{port}"
    app = create_app(settings, advertise_url=advertised)
    with running_uvicorn(app, port), connect(store) as client:
        assert isinstance(client, RemoteImageSearch)
        assert client.index(image_folder["red"].parent).indexed == 6
        assert client.info().points == 6


def test_a_held_folder_whose_server_does_not_answer_is_one_error(
    tiny_store_template, tmp_path
) -> None:
    folder = tmp_path / "served"
    shutil.copytree(tiny_store_template[1], folder)
    held = EdgeStore(folder)  # as a server that does not answer (yet) holds it
    dead = f"http://127.0.0.1:{free_port()}"
    advertise_server(folder, dead)
    try:
        with pytest.raises(StoreServedError) as refused:
            connect(folder)
    finally:
        held.close()
    assert refused.value.url == dead
    assert "\n" not in str(refused.value)


def test_a_folder_held_by_another_process_is_locked(tiny_store_template, tmp_path) -> None:
    folder = tmp_path / "held"
    shutil.copytree(tiny_store_template[1], folder)
    held = EdgeStore(folder)
    try:
        with pytest.raises(StoreLockedError) as refused:
            connect(folder)
    finally:
        held.close()
    assert not isinstance(refused.value, StoreServedError)


def test_the_api_key_comes_from_the_argument_or_the_settings(tiny_store_template, tmp_path) -> None:
    from indexer.errors import ConfigError
    from search.api import create_app

    _, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    settings = Settings(store={"location": str(store)}, api={"api_key": "sesame"})
    with running_uvicorn(create_app(settings), free_port()) as url:
        with connect(url) as client, pytest.raises(ConfigError):
            client.info()  # no key: refused, as the server's own error class
        with connect(url, api_key="sesame") as client:
            assert client.info().points == 120
        keyed = Settings(api={"api_key": "sesame"})
        with connect(url, settings=keyed) as client:
            assert client.info().points == 120
