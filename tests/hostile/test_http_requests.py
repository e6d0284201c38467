"""Hostile requests to the HTTP API: each gets its exact 4xx JSON reply, and none a 5xx or a hang.

Most cases run through FastAPI's TestClient on the tiny collection; what is about processes,
sockets and time (slow downloads, endless chunked bodies, memory of decoding, a busy port) runs
against a real ``anyshot serve`` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest
from adversary import assert_no_traceback, free_port, png_declaring, run_anyshot, serving
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image
from web_servers import web_server

from indexer.config import build_settings
from indexer.stores.opening import open_store
from indexer.trusted_roots import trust_roots
from search.api import create_app
from search.cli import main

EXAMPLE = "ring-blue-006.png"


def settings_for(store: Path, **api: object):
    settings = build_settings(store=str(store), workers=0)
    settings.api = type(settings.api).model_validate(api)
    return settings


def store_copy(tiny_store_template, folder: Path) -> Path:
    images, template = tiny_store_template
    store = folder / "store"
    shutil.copytree(template, store)
    with open_store(settings_for(store).store) as opened:
        trust_roots(opened, [os.path.realpath(images)])
    return store


def encoded(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def error_of(reply) -> tuple[int, str]:
    body = reply.json()
    assert set(body) == {"error", "type"} and body["error"], body
    return reply.status_code, body["type"]


@pytest.fixture(scope="module")
def collection(tiny_store_template, tmp_path_factory) -> tuple[Path, Path]:
    images, _ = tiny_store_template
    return images, store_copy(tiny_store_template, tmp_path_factory.mktemp("requests"))


@pytest.fixture(scope="module")
def http(collection) -> Iterator[TestClient]:
    _, store = collection
    settings = settings_for(store, max_upload_bytes=1_000_000, max_thumbnails_per_request=3)
    with TestClient(create_app(settings)) as client:
        yield client


# -- a grab bag of malformed requests -------------------------------------------------------------

DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "kind"),
    [
        # ids: path-like, huge, negative, not numbers
        ("GET", "/images/..%2F..%2Fetc%2Fpasswd", {}, 404, "HTTPError"),
        ("GET", "/images/%2Fetc%2Fpasswd", {}, 404, "HTTPError"),
        ("GET", "/images/99999999999999999999999999999", {}, 422, "ValidationError"),
        ("GET", "/images/-1", {}, 422, "ValidationError"),
        ("GET", "/images/1.5", {}, 422, "ValidationError"),
        ("GET", "/images/0x10", {}, 422, "ValidationError"),
        ("GET", "/images/%00", {}, 422, "ValidationError"),
        ("GET", "/thumbs/abc", {}, 422, "ValidationError"),
        ("GET", "/thumbs/1?size=abc", {}, 422, "ValidationError"),
        ("GET", "/thumbs/1?size=99999", {}, 422, "ValidationError"),
        ("GET", "/images/12345", {}, 404, "StoreNotFoundError"),
        ("GET", "/index/..%2F..%2Fetc", {}, 404, "HTTPError"),
        ("GET", "/index/" + "x" * 65, {}, 422, "ValidationError"),
        # numbers that are not numbers
        ("GET", "/search?q=x&threshold=nan", {}, 422, "ValidationError"),
        ("GET", "/search?q=x&threshold=1e999", {}, 422, "ValidationError"),
        ("GET", "/search?q=x&k=99999999999999999999999999", {}, 422, "ValidationError"),
        (
            "POST",
            "/search",
            {"content": b'{"text": "x", "k": 1e999}', "headers": JSON},
            422,
            "ValidationError",
        ),
        (
            "POST",
            "/search",
            {"content": b'{"text": "x", "threshold": NaN}', "headers": JSON},
            422,
            "ValidationError",
        ),
        ("POST", "/metadata", {"content": b'{"ids": [1e400]}'}, 422, "ValidationError"),
        ("POST", "/knn-service", {"content": b'{"embedding_input": [NaN, 1]}'}, 400, "QueryError"),
        (
            "POST",
            "/knn-service",
            {"content": b'{"embedding_input": [Infinity]}'},
            400,
            "QueryError",
        ),
        # filters with numbers that are not finite (Qdrant Edge panics on NaN)
        ("GET", "/search?q=x&filter=mtime%3E%3Dnan", {}, 400, "QueryError"),
        ("GET", "/search?q=x&filter=mtime%3CNaN", {}, 400, "QueryError"),
        ("GET", "/search?q=x&filter=mtime%3Einf", {}, 400, "QueryError"),
        ("GET", "/search?q=x&filter=mtime%3E%3D-infinity", {}, 400, "QueryError"),
        ("GET", "/search?q=x&filter=mtime%3C1e999", {}, 400, "QueryError"),
        ("GET", "/search?q=x&filter=size%3C" + "9" * 400, {}, 400, "QueryError"),
        ("POST", "/search", {"json": {"text": "x", "filters": ["mtime>=nan"]}}, 400, "QueryError"),
        # deeply nested JSON: 400, never a RecursionError's 500
        ("POST", "/knn-service", {"content": DEEP_LIST}, 400, "QueryError"),
        ("POST", "/knn-service", {"content": DEEP_OBJECT}, 400, "QueryError"),
        ("POST", "/metadata", {"content": '{"ids":' + DEEP_LIST + "}"}, 400, "QueryError"),
        ("POST", "/search", {"content": DEEP_LIST, "headers": JSON}, 400, "HTTPError"),
        ("POST", "/search", {"content": DEEP_OBJECT, "headers": JSON}, 400, "HTTPError"),
        ("POST", "/index", {"content": DEEP_OBJECT, "headers": JSON}, 400, "HTTPError"),
        # wrong content types and bodies
        ("POST", "/search", {"content": b'{"text": "x"}', "headers": TEXT}, 422, "ValidationError"),
        ("POST", "/search", {"content": b"null", "headers": JSON}, 422, "ValidationError"),
        ("POST", "/search", {"content": b"\xff\xfe{", "headers": JSON}, 400, "HTTPError"),
        (
            "POST",
            "/search",
            {"content": b"x=1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            422,
            "ValidationError",
        ),
        ("POST", "/knn-service", {"content": b"{not json"}, 400, "QueryError"),
        ("POST", "/knn-service", {"content": b"\xff\xfe\x00"}, 400, "QueryError"),
        ("POST", "/metadata", {"json": {"ids": "1,2"}}, 422, "ValidationError"),
        ("POST", "/metadata", {"json": {"ids": list(range(1001))}}, 400, "QueryError"),
        ("POST", "/search/image", {"data": {"k": "2"}}, 422, "ValidationError"),
        ("POST", "/search/image", {"data": {"file": "not a file"}}, 422, "ValidationError"),
        (
            "POST",
            "/search/image",
            {"content": b"--x--", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            422,
            "ValidationError",
        ),
        ("POST", "/search/image", {"json": {"file": "x"}}, 422, "ValidationError"),
        ("DELETE", "/search", {}, 405, "HTTPError"),
        ("PUT", "/images/1", {}, 405, "HTTPError"),
        ("TRACE", "/", {}, 405, "HTTPError"),
        # the page's files: no way out of their folder
        ("GET", "/static/..%2F..%2F..%2Fetc%2Fpasswd", {}, 404, "HTTPError"),
        ("GET", "/static/%2e%2e/%2e%2e/api.py", {}, 404, "HTTPError"),
        ("GET", "/static/", {}, 404, "HTTPError"),
        ("GET", "/search?q=" + "x" * 20_000, {}, 422, "ValidationError"),
        # images that are not images
        ("POST", "/search", {"json": {"image": b64(HTML)}}, 400, "QueryError"),
        ("POST", "/search", {"json": {"image": b64(SVG)}}, 400, "QueryError"),
        (
            "POST",
            "/search",
            {"json": {"image": "data:image/svg+xml;base64," + b64(SVG)}},
            400,
            "QueryError",
        ),
        ("POST", "/search", {"json": {"image": "!!!"}}, 400, "QueryError"),
        (
            "POST",
            "/search",
            {"json": {"parts": [{"kind": "image", "value": b64(SVG)}]}},
            400,
            "QueryError",
        ),
        (
            "POST",
            "/search/image",
            {"files": {"file": ("x.png", HTML, "image/png")}},
            400,
            "QueryError",
        ),
        (
            "POST",
            "/search/image",
            {"files": {"file": ("x.svg", SVG, "image/svg+xml")}},
            400,
            "QueryError",
        ),
        (
            "POST",
            "/search/image",
            {"files": {"file": ("x.png", b"", "image/png")}},
            400,
            "QueryError",
        ),
        ("POST", "/knn-service", {"json": {"image": b64(HTML)}}, 400, "QueryError"),
        # URLs and paths where an image is expected
        ("POST", "/search", {"json": {"image_url": "/etc/passwd"}}, 400, "QueryError"),
        ("POST", "/search", {"json": {"image_url": "file:///etc/passwd"}}, 400, "QueryError"),
        (
            "POST",
            "/search",
            {"json": {"image_url": "gopher://127.0.0.1:6379/_x"}},
            400,
            "QueryError",
        ),
        (
            "POST",
            "/search",
            {"json": {"image": "http://169.254.169.254/latest"}},
            400,
            "QueryError",
        ),
        (
            "POST",
            "/knn-service",
            {"json": {"image_url": "http://127.0.0.1:22/"}},
            400,
            "QueryError",
        ),
        # sources that are not sources
        ("POST", "/index", {"json": {"source": "relative/folder"}}, 400, "ConfigError"),
        ("POST", "/index", {"json": {"source": "/tmp/x\u0000/y"}}, 400, "ConfigError"),
        ("POST", "/index", {"json": {"source": ""}}, 422, "ValidationError"),
        ("POST", "/index", {"json": {"source": 5}}, 422, "ValidationError"),
    ],
)
def test_malformed_requests_get_their_json_error(
    http: TestClient, method: str, url: str, kwargs: dict, status: int, kind: str
) -> None:
    reply = http.request(method, url, **kwargs)
    assert error_of(reply) == (status, kind), reply.text


def test_nul_bytes_in_queries_are_data(http: TestClient) -> None:
    """NUL in a text or a filter value is an odd query, not an error of the server."""
    assert http.get("/search", params={"q": "a\x00red circle", "k": 2}).status_code == 200
    for expression in ("folder=/x\x00y", "tag=a\x00", "format=PNG\x00"):
        reply = http.get("/search", params={"q": "x", "filter": expression})
        assert (reply.status_code, reply.json()["hits"]) == (200, []), expression


def test_a_huge_header_is_only_a_header(http: TestClient) -> None:
    assert http.get("/healthz", headers={"X-Padding": "a" * 200_000}).status_code == 200


def test_odd_api_keys_are_refused_with_401(tiny_store_template, tmp_path) -> None:
    store = store_copy(tiny_store_template, tmp_path)
    with TestClient(create_app(settings_for(store, api_key="s3cret"))) as client:
        for headers, query in [
            ([(b"x-api-key", b"s3cret\xff")], ""),
            ([(b"x-api-key", b"")], ""),
            ([], "&api_key=%FF%00"),
            ([], "&api_key=s3cre"),
            ([(b"x-api-key", b"S3CRET")], ""),
        ]:
            reply = client.get(f"/search?q=x{query}", headers=headers)
            assert reply.status_code == 401, (headers, query)
            assert reply.json() == {
                "error": "missing or wrong API key (header X-API-Key)",
                "type": "Unauthorized",
            }
        assert client.get("/search?q=x&api_key=s3cret").status_code == 200
        assert client.post("/search", json={"text": "x"}).status_code == 401  # body unread


# -- example images: decoded within bounds --------------------------------------------------------


def test_a_small_png_declaring_9999_by_9999_is_refused_before_decoding(http: TestClient) -> None:
    bomb = png_declaring(9999, 9999)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert len(bomb) < 100 and Image.open(io.BytesIO(bomb)).size == (9999, 9999)
    for reply in (
        http.post("/search", json={"image": b64(bomb)}),
        http.post("/search", json={"parts": [{"kind": "image", "value": b64(bomb)}]}),
        http.post("/search/image", files={"file": ("x.png", bomb, "image/png")}),
        http.post("/knn-service", json={"image": b64(bomb)}),
    ):
        assert error_of(reply) == (400, "QueryError")
        assert reply.json()["error"] == (
            "the example image is too large: it decodes to 99980001 pixels, over the request's "
            "budget of 40000000 (api.max_query_pixels)"
        )


def test_jpegs_count_the_pixels_they_decode_to(tiny_store_template, tmp_path) -> None:
    """A JPEG shrinks in the decoder to the model's input size (64 here): 512² decodes to 64²."""
    store = store_copy(tiny_store_template, tmp_path)
    settings = settings_for(store, max_query_pixels=10_000)
    photo = Image.new("RGB", (512, 512), "blue")
    with TestClient(create_app(settings)) as client:
        jpeg = client.post("/search", json={"image": b64(encoded(photo, "JPEG")), "k": 1})
        assert jpeg.status_code == 200, jpeg.text
        png = client.post("/search", json={"image": b64(encoded(photo, "PNG"))})
        assert error_of(png) == (400, "QueryError") and "262144 pixels" in png.json()["error"]
        # the budget is per request: two 64² examples fit, a third does not
        small = b64(encoded(Image.new("RGB", (64, 64), "red"), "PNG"))
        parts = [{"kind": "image", "value": small}] * 2
        assert client.post("/search", json={"parts": parts}).status_code == 200
        three = client.post("/search", json={"parts": [*parts, parts[0]]})
        assert error_of(three) == (400, "QueryError")
        assert "over what is left of the request's budget of 10000" in three.json()["error"]


def test_decodes_beyond_the_limit_wait_then_get_429(tiny_store_template, tmp_path) -> None:
    store = store_copy(tiny_store_template, tmp_path)
    example = b64((tiny_store_template[0] / EXAMPLE).read_bytes())
    with TestClient(create_app(settings_for(store, max_concurrent_decodes=1))) as client:
        decodes = client.app.state.server.examples.decodes
        decodes.wait = 0.2  # seconds, instead of a few
        with decodes.slot():  # the one decode slot is taken
            busy = client.post("/search", json={"image": example})
        assert error_of(busy) == (429, "BusyError")
        assert busy.headers["retry-after"] == "1"
        assert "api.max_concurrent_decodes" in busy.json()["error"]
        assert client.post("/search", json={"image": example}).status_code == 200


# -- URLs the server fetches for its clients ------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "status", "message"),
    [
        ({}, 400, "this server does not fetch image URLs (api.fetch_image_urls)"),
        ({"fetch_image_urls": True}, 400, "is not a public address (127.0.0.1)"),
        ({"fetch_image_urls": True, "fetch_allowed_hosts": ["127.0.0.1"]}, 200, None),
    ],
)
def test_image_urls_are_fetched_only_when_allowed(
    tiny_store_template, tmp_path, api: dict, status: int, message: str | None
) -> None:
    images, _ = tiny_store_template
    store = store_copy(tiny_store_template, tmp_path)
    with (
        web_server({"/query.png": (images / EXAMPLE).read_bytes()}) as web,
        TestClient(create_app(settings_for(store, **api))) as client,
    ):
        for reply in (
            client.post("/search", json={"image_url": f"{web.url}/query.png", "k": 1}),
            client.post("/knn-service", json={"image_url": f"{web.url}/query.png"}),
        ):
            if message is None:
                assert reply.status_code == 200, reply.text
                first = reply.json()[0] if isinstance(reply.json(), list) else reply.json()
                first = first if "image_path" in first else first["hits"][0]
                assert first.get("uri", first.get("image_path")) == str(images / EXAMPLE)
            else:
                assert error_of(reply) == (status, "QueryError")
                assert message in reply.json()["error"]
        assert web.requests == (["/query.png"] * 2 if message is None else [])


# -- clip-back bounds its work --------------------------------------------------------------------


def test_clip_back_builds_at_most_max_thumbnails_per_request(http: TestClient) -> None:
    results = http.post("/knn-service", json={"text": "a red circle", "num_images": 10}).json()
    assert len(results) == 10 and all("url" in r for r in results)
    assert ["image" in r for r in results] == [True] * 3 + [False] * 7
    ids = [r["id"] for r in results]
    metadata = http.post("/metadata", json={"ids": ids}).json()
    assert [m["id"] for m in metadata] == ids
    assert ["image" in m["metadata"] for m in metadata] == [True] * 3 + [False] * 7


# -- bodies over the limit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/search", JSON),
        ("/knn-service", {}),
        ("/metadata", {"content-type": "text/plain"}),
        ("/index", JSON),
        ("/search/image", {"content-type": "multipart/form-data; boundary=b"}),
        ("/healthz", {}),
    ],
)
def test_a_chunked_body_over_the_limit_gets_413(http: TestClient, url: str, headers) -> None:
    sent = []

    def body() -> Iterator[bytes]:
        for _ in range(100):  # 6.5 MB in chunks, no Content-Length
            sent.append(1)
            yield b"x" * 65536

    method = "GET" if url == "/healthz" else "POST"
    reply = http.request(method, url, content=body(), headers=headers)
    if url == "/healthz":
        assert reply.status_code == 200  # a body nobody reads is never counted
        return
    assert error_of(reply) == (413, "TooLarge")
    assert reply.json()["error"] == "request body larger than 1000000 bytes"


def test_a_declared_length_over_the_limit_is_refused_unread(http: TestClient) -> None:
    reply = http.post("/search", content=b"x" * 1_000_001, headers=JSON)
    assert error_of(reply) == (413, "TooLarge")
    assert reply.headers["connection"] == "close"


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["search", "x", "--threshold", "nan"],
        ["search", "x", "--threshold", "inf"],
        ["search", "x", "--threshold", "-inf"],
        ["dupes", "--threshold", "nan"],
        ["dupes", "--threshold", "NaN"],
        ["tag", "--labels", "LABELS", "--min-score", "nan"],
        ["tag", "--labels", "LABELS", "--min-score", "infinity"],
        ["schedule", "/x", "--interval", "inf"],
    ],
)
def test_non_finite_numbers_are_refused_by_the_options(collection, tmp_path, args) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    args = [str(labels) if a == "LABELS" else a for a in args]
    result = CliRunner().invoke(main, [*args, "--store", str(collection[1])])
    assert result.exit_code == 2, result.output
    assert "is not a finite number" in result.stderr
    assert_no_traceback(result.stdout, result.stderr)


def test_a_non_finite_filter_is_one_error_line(tiny_store_template, tmp_path) -> None:
    store = store_copy(tiny_store_template, tmp_path)
    result = CliRunner().invoke(
        main, ["search", "x", "--filter", "mtime>=nan", "--store", str(store)]
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: filter 'mtime>=nan': 'nan' is not a finite number of seconds (at most 1e+13 "
        "either side of 1970)"
    ]


def test_an_unexpected_error_is_one_line_and_exit_1() -> None:
    """The last resort of every command: a bug is one line, its traceback only with -v."""
    from search.cli import AnyshotGroup, user_errors

    @click.group(cls=AnyshotGroup)
    @click.option("-v", "--verbose", count=True)
    def group(verbose: int) -> None:
        pass

    @group.command()
    def broken() -> None:
        raise RuntimeError("something nobody expected")

    @group.command("guarded")
    def guarded_command() -> None:
        with user_errors():
            raise KeyError("inside user_errors too")

    quiet = CliRunner().invoke(group, ["broken"])
    assert quiet.exit_code == 1
    assert quiet.stderr.splitlines() == [
        "error: internal error: RuntimeError: something nobody expected (run with -v for details)"
    ]
    assert_no_traceback(quiet.stdout, quiet.stderr)
    guarded = CliRunner().invoke(group, ["guarded"])
    assert guarded.exit_code == 1 and guarded.stderr.startswith("error: internal error: KeyError")
    loud = CliRunner().invoke(group, ["-v", "broken"])
    assert loud.exit_code == 1 and "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.splitlines()[-1].startswith("error: internal error: RuntimeError")


# -- against a real `anyshot serve` ---------------------------------------------------------------


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def http_call(url: str, body: dict | None = None, timeout: float = 60) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def served(tiny_store_template, tmp_path_factory):
    """A real `anyshot serve`: URL fetching on for 127.0.0.1, a 3 s download deadline, 4
    downloads at once, bodies up to 1 MB."""
    root = tmp_path_factory.mktemp("served")
    store = store_copy(tiny_store_template, root)
    env = {
        "ANYSHOT_API__FETCH_IMAGE_URLS": "true",
        "ANYSHOT_API__FETCH_ALLOWED_HOSTS": '["127.0.0.1"]',
        "ANYSHOT_API__DOWNLOAD_DEADLINE": "3",
        "ANYSHOT_API__MAX_CONCURRENT_DOWNLOADS": "4",
        "ANYSHOT_API__MAX_UPLOAD_BYTES": "1000000",
    }
    with serving(store, env=env, args=("--log-level", "warning")) as server:
        yield server
    assert_no_traceback(server.output())


@pytest.mark.slow
def test_slow_downloads_neither_hang_nor_starve_the_server(served) -> None:
    """41 example URLs on a server sending 1 byte/s: 4 download at once and stop at the
    deadline, the rest get 429 at once, and /healthz and searches answer meanwhile."""
    with web_server({"/slow.png": b"x" * 1000}, byte_seconds=1.0) as slow:
        url = f"{slow.url}/slow.png"
        with ThreadPoolExecutor(41) as pool:
            pending = [
                pool.submit(http_call, f"{served.url}/search", {"image_url": url})
                for _ in range(41)
            ]
            deadline = time.monotonic() + 20
            while len(slow.requests) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(slow.requests) == 4
            with urllib.request.urlopen(f"{served.url}/healthz", timeout=5) as health:
                assert json.loads(health.read())["status"] == "ok"
            status, found = http_call(f"{served.url}/search?q=a+red+circle&k=1", timeout=10)
            assert status == 200 and len(found["hits"]) == 1
            assert not all(f.done() for f in pending)  # while downloads were still going on
            replies = [f.result(timeout=60) for f in pending]
    statuses = [status for status, _ in replies]
    assert statuses.count(400) + statuses.count(429) == 41
    assert statuses.count(400) == len(slow.requests) >= 4  # only those that got a slot
    for status, body in replies:
        if status == 400:
            assert body["type"] == "QueryError"
            assert body["error"] == (
                f"cannot use the example image {url}: download took longer than 3 s"
            )
        else:
            assert body["type"] == "BusyError"
            assert "api.max_concurrent_downloads" in body["error"]


@pytest.mark.slow
def test_an_endless_chunked_body_is_cut_off_at_the_limit(served) -> None:
    """A chunked POST that would go on for 200 MB: 413 after about 1 MB, the connection
    closed, and the server's memory does not grow with what was sent."""
    peak_before = peak_rss_bytes(served.process.pid)
    port = int(served.url.rsplit(":", 1)[1])
    stop = threading.Event()
    sent = [0]

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b"[" * 65536)

        def send_forever() -> None:
            while not stop.is_set() and sent[0] < 200_000_000:
                try:
                    sock.sendall(chunk)
                except OSError:
                    return
                sent[0] += 65536

        sender = threading.Thread(target=send_forever, daemon=True)
        sender.start()
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            assert data, reply
            reply += data
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ")
        assert b"connection: close" in head.lower()
        while True:  # the server closes the connection: nothing more is read
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            body += data
        stop.set()
        sender.join(timeout=30)
    assert json.loads(body) == {
        "error": "request body larger than 1000000 bytes",
        "type": "TooLarge",
    }
    assert sent[0] < 200_000_000
    assert peak_rss_bytes(served.process.pid) - peak_before < 64 * 2**20
    with urllib.request.urlopen(f"{served.url}/healthz", timeout=5) as health:
        assert health.status == 200


@pytest.mark.slow
def test_pixel_bombs_cost_the_server_no_memory(served) -> None:
    """Four uploads at once of a small PNG declaring 9999×9999 (400 MB each, decoded)."""
    bomb = {"image": b64(png_declaring(9999, 9999))}
    peak_before = peak_rss_bytes(served.process.pid)
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: http_call(f"{served.url}/search", bomb), range(4)))
    assert [status for status, _ in replies] == [400] * 4
    assert all("is too large" in body["error"] for _, body in replies)
    assert peak_rss_bytes(served.process.pid) - peak_before < 64 * 2**20


@pytest.mark.slow
def test_huge_headers_get_a_4xx_and_the_server_goes_on(served) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        padding = b"a" * 1_000_000
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + padding + b"\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ")), head
    with urllib.request.urlopen(f"{served.url}/healthz", timeout=5) as health:
        assert health.status == 200


@pytest.mark.slow
def test_serve_on_a_busy_port_is_one_error_line(tmp_path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = run_anyshot(
            "serve", "--store", str(tmp_path / "store"), "--host", "127.0.0.1", "--port", str(port)
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use"
    ]
    assert "serving" not in result.stdout + result.stderr
    assert not (tmp_path / "store" / "server.json").exists()
