"""What the HTTP API hands out: only image files under the collection's trusted roots.

A store's payloads may come from a crafted snapshot, so each case here upserts a point whose
``uri`` names something that must not be served (``/etc/passwd``, a FIFO, a link out of the
root, an HTML file named ``x.png``, a loopback URL, ...) and asks for it: 404 with one generic
JSON error, every time. Images that may be served come with the content type of the format
Pillow reads from their bytes, never one guessed from the name.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from shape_collection import write_shape_images
from web_servers import web_server

from indexer.config import build_settings
from indexer.schema import ModelIdentity, path_uri, point_id
from indexer.stores.interface import VectorStore
from indexer.stores.opening import open_store
from indexer.trusted_roots import TRUSTED_ROOTS_DOCUMENT, trust_roots
from search.api import create_app

NOT_SERVABLE = {"error": "the image is not servable", "type": "NotServable"}
TRUSTED_ORIGIN = "https://images.example"
INJECTION = "/a\r\nSet-Cookie: session=stolen"


def png_bytes(colour: str = "red", size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(colour: str = "blue", size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def craft_points(store: VectorStore, uris: list[str]) -> dict[str, int]:
    """Upsert points naming ``uris`` (as a crafted snapshot would); returns their ids."""
    (template,) = store.retrieve([next(iter(store.scroll(batch_size=1))).id], with_vectors=True)
    vectors = np.stack([template.vector] * len(uris)).astype(np.float32)
    payloads = [
        {
            "uri": uri,
            "size": 100,
            "mtime": 0.0,
            "sha256": "",
            "width": 40,
            "height": 30,
            "format": "PNG",
            "tags": [],
        }
        for uri in uris
    ]
    ids = [point_id(uri) for uri in uris]
    store.upsert(ids, vectors, payloads)
    return dict(zip(uris, ids, strict=True))


def settings_for(store: Path, **api: object):
    settings = build_settings(store=str(store), workers=0)
    settings.api = type(settings.api).model_validate(api)
    return settings


@dataclass
class Site:
    """A collection whose trusted folder holds good and bad files, with crafted points."""

    store: Path
    trusted: Path
    outside: Path
    ids: dict[str, int]


@pytest.fixture(scope="module")
def site(tiny_store_template, tmp_path_factory) -> Site:
    root = tmp_path_factory.mktemp("serving")
    store = root / "store"
    shutil.copytree(tiny_store_template[1], store)
    trusted = root / "trusted"
    outside = root / "outside"
    trusted.mkdir()
    outside.mkdir()
    (trusted / "red.png").write_bytes(png_bytes())
    (trusted / "png-named.jpg").write_bytes(png_bytes("green"))
    (trusted / "evil.html").write_bytes(jpeg_bytes())  # an image named .html (stored XSS)
    (trusted / "page.png").write_bytes(b"<html><script>alert(document.cookie)</script></html>")
    (trusted / "drawing.svg").write_bytes(
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    )
    (trusted / os.fsdecode(b"not-utf8-\xff.png")).write_bytes(png_bytes("yellow"))
    (trusted / "folder.png").mkdir()
    os.mkfifo(trusted / "pipe.png")
    (outside / "secret.png").write_bytes(png_bytes("black"))
    (trusted / "escape.png").symlink_to(outside / "secret.png")
    (trusted / "passwd.png").symlink_to("/etc/passwd")
    (trusted / "inner-link.png").symlink_to(trusted / "red.png")
    odd_name = os.fsdecode(b"not-utf8-\xff.png")
    uris = [
        str(trusted / "red.png"),
        str(trusted / "png-named.jpg"),
        str(trusted / "evil.html"),
        str(trusted / "inner-link.png"),
        path_uri(str(trusted / odd_name)),
        "/etc/passwd",
        "/dev/zero",
        str(trusted / "pipe.png"),
        str(trusted / "folder.png"),
        str(trusted / "escape.png"),
        str(trusted / "passwd.png"),
        str(outside / "secret.png"),
        str(trusted / ".." / "outside" / "secret.png"),
        str(trusted / "page.png"),
        str(trusted / "drawing.svg"),
        str(trusted / "missing.png"),
        "file:///etc/passwd",
        "file://otherhost/etc/passwd",
        "http://127.0.0.1:9/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://images.example/cat.png",
        f"{TRUSTED_ORIGIN}/cat.png",
        TRUSTED_ORIGIN + INJECTION,
        "",
    ]
    with open_store(settings_for(store).store) as opened:
        ids = craft_points(opened, uris)
        trust_roots(opened, [os.path.realpath(trusted), TRUSTED_ORIGIN])
    return Site(store, trusted, outside, ids)


@pytest.fixture(scope="module")
def http(site: Site) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(site.store)), follow_redirects=False) as client:
        yield client


REFUSED = [
    "/etc/passwd",
    "/dev/zero",
    "pipe.png",
    "folder.png",
    "escape.png",
    "passwd.png",
    "OUTSIDE/secret.png",
    "../outside/secret.png",
    "page.png",
    "drawing.svg",
    "missing.png",
    "file:///etc/passwd",
    "file://otherhost/etc/passwd",
    "http://127.0.0.1:9/cat.png",
    "http://169.254.169.254/latest/meta-data/",
    "ftp://images.example/cat.png",
    "",
]


def uri_of(site: Site, name: str) -> str:
    if name.startswith("OUTSIDE/"):
        return str(site.outside / name.removeprefix("OUTSIDE/"))
    if name.startswith("../"):
        return str(site.trusted / ".." / name.removeprefix("../"))
    if name.startswith("/") or "://" in name or not name:
        return name
    return str(site.trusted / name)


@pytest.mark.parametrize("name", REFUSED)
@pytest.mark.parametrize("route", ["images", "thumbs"])
def test_crafted_points_are_not_served(http: TestClient, site: Site, name: str, route: str):
    started = time.monotonic()
    reply = http.get(f"/{route}/{site.ids[uri_of(site, name)]}")
    assert (reply.status_code, reply.json()) == (404, NOT_SERVABLE)
    assert time.monotonic() - started < 10  # a FIFO or /dev/zero is never read
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_the_refusal_is_logged_with_its_reason(http: TestClient, site: Site, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="search"):
        http.get(f"/images/{site.ids['/etc/passwd']}")
        http.get(f"/images/{site.ids[str(site.trusted / 'pipe.png')]}")
        http.get(f"/images/{site.ids[str(site.trusted / 'escape.png')]}")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not serving /etc/passwd: the collection" not in logged  # reasons, not a generic line
    assert "/etc/passwd: outside the folders this run may read" in logged
    assert "pipe.png: not a regular file (a FIFO)" in logged
    assert "escape.png: outside the folders this run may read" in logged


@pytest.mark.parametrize(
    ("name", "media_type", "colour"),
    [
        ("red.png", "image/png", "red"),
        ("png-named.jpg", "image/png", "green"),  # the bytes decide, not the name
        ("evil.html", "image/jpeg", None),
        ("inner-link.png", "image/png", "red"),  # a link that stays inside the root
    ],
)
def test_images_under_the_trusted_folder_are_served_with_their_format(
    http: TestClient, site: Site, name: str, media_type: str, colour: str | None
) -> None:
    reply = http.get(f"/images/{site.ids[str(site.trusted / name)]}")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == media_type
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert reply.content == (site.trusted / name).read_bytes()
    assert int(reply.headers["content-length"]) == len(reply.content)
    thumb = http.get(f"/thumbs/{site.ids[str(site.trusted / name)]}", params={"size": 16})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    if colour is not None:
        pixel = Image.open(io.BytesIO(thumb.content)).convert("RGB").getpixel((8, 6))
        expected = Image.new("RGB", (1, 1), colour).getpixel((0, 0))
        assert np.abs(np.subtract(pixel, expected)).max() < 16


def test_a_name_that_is_not_utf8_is_served(http: TestClient, site: Site) -> None:
    uri = path_uri(str(site.trusted / os.fsdecode(b"not-utf8-\xff.png")))
    assert uri.startswith("file://") and "%FF" in uri
    reply = http.get(f"/images/{site.ids[uri]}")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"


def test_a_trusted_web_origin_is_a_redirect(http: TestClient, site: Site) -> None:
    reply = http.get(f"/images/{site.ids[f'{TRUSTED_ORIGIN}/cat.png']}")
    assert reply.status_code == 307
    assert reply.headers["location"] == f"{TRUSTED_ORIGIN}/cat.png"
    # a crafted URI cannot add headers to the redirect
    crafted = http.get(f"/images/{site.ids[TRUSTED_ORIGIN + INJECTION]}")
    assert crafted.status_code == 307 and "set-cookie" not in crafted.headers
    assert crafted.headers["location"] == f"{TRUSTED_ORIGIN}/a%0D%0ASet-Cookie:%20session=stolen"


def test_clip_back_gives_no_thumbnail_of_what_is_not_servable(http: TestClient, site: Site) -> None:
    good = site.ids[str(site.trusted / "red.png")]
    bad = [site.ids[str(site.trusted / "escape.png")], site.ids[str(site.outside / "secret.png")]]
    reply = http.post("/metadata", json={"ids": [good, *bad]})
    assert reply.status_code == 200
    by_id = {m["id"]: m["metadata"] for m in reply.json()}
    assert "image" in by_id[good]
    assert ["image" in by_id[i] for i in bad] == [False, False]  # real PNGs, outside the root
    assert by_id[bad[0]]["url"].endswith(f"/images/{bad[0]}")


def test_every_reply_says_nosniff_and_the_page_has_a_policy(http: TestClient) -> None:
    page = http.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    for path in ("/", "/healthz", "/search?q=x", "/images/1", "/static/app.js", "/nope"):
        assert http.get(path).headers["x-content-type-options"] == "nosniff", path
    assert http.get("/healthz").headers["content-security-policy"].startswith("default-src 'none'")


def test_the_page_keeps_the_api_key_for_the_session_only() -> None:
    from importlib import resources

    script = (resources.files("search") / "web" / "app.js").read_text()
    assert "localStorage" not in script and "sessionStorage" in script
    page = (resources.files("search") / "web" / "index.html").read_text()
    # No inline code for the policy to allow: no <script> body, no style=, no onclick=.
    assert "<script>" not in page and " style=" not in page
    assert re.search(r"\son\w+\s*=", page, re.IGNORECASE) is None


# -- what the server reads, and when ---------------------------------------------------------------


def test_the_served_bytes_are_those_of_the_file_that_was_checked(tmp_path) -> None:
    """A link swapped in after the check cannot redirect the read (no reopening by path)."""
    from search.client import ImageSearch
    from search.serving.served_images import ServedImages
    from search.serving.work_limits import WorkLimiter

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = folder / "photo.png"
    photo.write_bytes(png_bytes("purple"))
    original = photo.read_bytes()
    store = settings_for(tmp_path / "s").store
    with open_store(store) as opened:
        opened.bind_model(ModelIdentity("test", None, 4))
        trust_roots(opened, [os.path.realpath(folder)])
        downloads = WorkLimiter(1, what="downloads", setting="test")
        client = ImageSearch(settings_for(tmp_path / "s"), store=opened)
        served = ServedImages(client.trusted_roots, settings_for(tmp_path).api, downloads)
        served.refresh()
        with served.open_local(str(photo)) as checked:
            photo.unlink()
            photo.symlink_to("/etc/passwd")
            assert b"".join(checked.chunks()) == original


def test_a_store_without_trusted_roots_serves_nothing_and_says_so(
    tiny_store_template, tmp_path, caplog
) -> None:
    images, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    (store / "documents" / f"{TRUSTED_ROOTS_DOCUMENT}.json").unlink(missing_ok=True)
    with (
        caplog.at_level(logging.WARNING, logger="search"),
        TestClient(create_app(settings_for(store))) as client,
    ):
        hit = client.get("/search", params={"q": "a red circle", "k": 1}).json()["hits"][0]
        assert Path(hit["uri"]).parent == images
        reply = client.get(f"/images/{hit['id']}")
        assert (reply.status_code, reply.json()) == (404, NOT_SERVABLE)
        assert client.get(f"/thumbs/{hit['id']}").status_code == 404
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(logged) == 1, logged  # once at startup, not once per image asked for
    assert "records no folders" in logged[0] and "anyshot index SOURCE" in logged[0]


def test_a_server_index_run_makes_its_folder_servable(tiny_store_template, tmp_path) -> None:
    """The run records its folder as a trusted root; the server re-reads the roots after it."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store_template[1], store)
    more = tmp_path / "more"
    write_shape_images(more, 6, seed=8)
    with TestClient(create_app(settings_for(store))) as client:
        job = client.post("/index", json={"source": str(more)}).json()
        deadline = time.monotonic() + 120
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/index/{job['id']}").json()
        assert job["state"] == "done", job
        new = point_id(str(more / sorted(os.listdir(more))[0]))
        reply = client.get(f"/images/{new}")
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"


# -- web images of a trusted origin -----------------------------------------------------------


@pytest.mark.parametrize("allowed", [False, True])
def test_thumbnails_of_trusted_web_images_avoid_private_hosts_unless_allowed(
    tiny_store_template, tmp_path, allowed: bool
) -> None:
    with web_server({"/cat.png": png_bytes("red", (64, 48))}) as web:
        store = tmp_path / "store"
        shutil.copytree(tiny_store_template[1], store)
        with open_store(settings_for(store).store) as opened:
            ids = craft_points(opened, [f"{web.url}/cat.png"])
            trust_roots(opened, [web.url])
        api = {"fetch_allowed_hosts": ["127.0.0.1"]} if allowed else {}
        settings = settings_for(store, **api)  # fetch_image_urls stays off: these are indexed
        with TestClient(create_app(settings), follow_redirects=False) as client:
            image_id = ids[f"{web.url}/cat.png"]
            original = client.get(f"/images/{image_id}")
            assert original.status_code == 307
            assert original.headers["location"] == f"{web.url}/cat.png"
            thumb = client.get(f"/thumbs/{image_id}", params={"size": 32})
            if allowed:
                assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
                assert Image.open(io.BytesIO(thumb.content)).size == (32, 24)
                assert web.requests == ["/cat.png"]
            else:
                assert (thumb.status_code, thumb.json()) == (404, NOT_SERVABLE)
                assert web.requests == []  # refused before connecting


def test_an_untrusted_origin_is_neither_redirected_nor_fetched(http: TestClient, site) -> None:
    reply = http.get(f"/images/{site.ids['http://127.0.0.1:9/cat.png']}")
    assert (reply.status_code, reply.json()) == (404, NOT_SERVABLE)
    assert "location" not in reply.headers


def test_search_replies_still_link_every_hit(http: TestClient, site: Site) -> None:
    """A hit that is not servable is still found (its uri is data); only its file is withheld."""
    body = {"id": site.ids["/etc/passwd"], "k": 200}
    hits = http.post("/search", json=body).json()["hits"]
    crafted = [h for h in hits if h["uri"] == "/etc/passwd"]
    assert crafted and crafted[0]["image_url"] == f"/images/{site.ids['/etc/passwd']}"


# -- what index runs started over HTTP may read -----------------------------------------------


def run_job(client: TestClient, source: str) -> dict:
    job = client.post("/index", json={"source": source})
    assert job.status_code == 202, job.text
    job = job.json()
    deadline = time.monotonic() + 120
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/index/{job['id']}").json()
    return job


def test_index_runs_over_http_read_nothing_outside_the_index_roots(
    tiny_store_template, tmp_path
) -> None:
    """Links inside a root that lead out and list files naming outside paths or URLs: none of
    it is read, none of it is indexed, no URL is fetched (the run gets the server's policy)."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store_template[1], store)
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    inside = write_shape_images(allowed / "photos", 2, seed=12)
    escapes = write_shape_images(outside, 2, seed=13)
    (allowed / "photos" / "escape.png").symlink_to(escapes[0])
    (allowed / "photos" / "linked").symlink_to(outside, target_is_directory=True)
    with web_server({"/cat.png": png_bytes()}) as web:
        listed = [*map(str, (*inside, escapes[1])), "/etc/passwd", f"{web.url}/cat.png"]
        (allowed / "list.txt").write_text("\n".join(listed) + "\n")
        settings = settings_for(store, index_roots=[str(allowed)])
        with TestClient(create_app(settings)) as client:
            walked = run_job(client, str(allowed / "photos"))
            assert walked["state"] == "done", walked
            assert walked["report"]["indexed"] == 2
            from_list = run_job(client, str(allowed / "list.txt"))
            assert from_list["state"] == "done", from_list
            assert from_list["report"]["indexed"] == 0  # the two inside are unchanged
            refused = client.post("/index", json={"source": str(allowed / "photos" / "linked")})
            assert error_of_reply(refused) == (400, "ConfigError")
            stored = client.app.state.server.client
            outside_uris = [
                str(allowed / "photos" / "escape.png"),
                *(str(allowed / "photos" / "linked" / p.name) for p in escapes),
                *map(str, escapes),
                "/etc/passwd",
                f"{web.url}/cat.png",
            ]
            assert stored.payloads([point_id(uri) for uri in outside_uris]) == {}
            assert len(stored.payloads([point_id(str(p)) for p in inside])) == 2
        assert web.requests == []


def test_index_runs_over_http_fetch_no_url_without_fetching_on(
    tiny_store_template, tmp_path
) -> None:
    """No index_roots: any local source, but still no URL a client named is fetched."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store_template[1], store)
    with web_server({"/cat.png": png_bytes()}) as web:
        listing = tmp_path / "list.txt"
        listing.write_text(f"{web.url}/cat.png\nhttp://169.254.169.254/latest/meta-data/\n")
        with TestClient(create_app(settings_for(store))) as client:
            job = run_job(client, str(listing))
            assert job["state"] in ("done", "failed"), job
            assert job["report"] is None or job["report"]["indexed"] == 0
            served = client.app.state.server.client
            assert served.payloads([point_id(f"{web.url}/cat.png")]) == {}
        assert web.requests == []


def error_of_reply(reply) -> tuple[int, str]:
    body = reply.json()
    assert set(body) == {"error", "type"} and body["error"], body
    return reply.status_code, body["type"]
