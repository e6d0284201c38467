"""`anyshot serve` as a real process: the CLI hands work to it, and a browser uses its page."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_runs import run
from shape_collection import free_port, shape_of, write_shape_images

from indexer.config import build_settings
from indexer.stores.opening import open_store
from indexer.trusted_roots import trust_roots

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tiny_store_template, tmp_path_factory) -> Iterator[tuple[str, Path, Path]]:
    """`anyshot serve` on a copy of the tiny collection; yields (url, store, images)."""
    images, template = tiny_store_template
    root = tmp_path_factory.mktemp("served")
    store = root / "store"
    shutil.copytree(template, store)
    with open_store(build_settings(store=str(store)).store) as opened:
        trust_roots(opened, [os.path.realpath(images)])  # as its index run records
    port = free_port()
    anyshot = Path(sys.executable).parent / "anyshot"
    log = (root / "serve.log").open("w")
    env = os.environ | {"ANYSHOT_INDEX__WORKERS": "0", "ANYSHOT_INDEX__BATCH_SIZE": "16"}
    process = subprocess.Popen(
        [
            *(str(anyshot), "serve", "--store", str(store)),
            *("--host", "127.0.0.1", "--port", str(port), "--cors-origin", "*"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not (store / "server.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"anyshot serve did not start: {(root / 'serve.log').read_text()}")
        time.sleep(0.2)
    try:
        yield url, store, images
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    assert not (store / "server.json").exists()


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.loads(reply.read())


def test_server_advertises_itself_in_the_store(served) -> None:
    url, store, _ = served
    assert json.loads((store / "server.json").read_text())["url"] == url
    health = get_json(f"{url}/healthz")
    assert (health["status"], health["service"]) == ("ok", "anyshot")


def test_cli_index_and_search_go_through_the_server(served, tmp_path_factory) -> None:
    url, store, images = served
    # Not tmp_path: the server goes on serving these images to the browser tests after this
    # test, and a passed test's tmp_path is removed when it ends.
    more = tmp_path_factory.mktemp("more")
    write_shape_images(more, 40, seed=21)
    code, out, err = run("index", str(more), "--store", str(store), "--json")
    assert code == 0, err
    assert "anyshot serve" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["indexed"], summary["skipped"]) == (40, 0)
    assert get_json(f"{url}/collections")[0]["points"] == 160

    code, out, err = run("search", "a cyan heart", "--store", str(store), "-k", "3", "--json")
    assert code == 0, err
    hits = [json.loads(line) for line in out.strip().splitlines()]
    assert [shape_of(h["uri"]) for h in hits] == [("heart", "cyan")] * 3
    example = images / "ring-blue-006.png"
    code, out, err = run("search", "--image", str(example), "--store", str(store), "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["uri"] == str(example)


@pytest.mark.browser
def test_the_page_finds_images_in_headless_chromium(served) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _, images = served
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{url}/")
            page.fill("#k", "6")
            page.fill("#query", "a red circle")
            page.press("#query", "Enter")
            page.wait_for_selector("figure.hit img")
            # every result image has loaded (a broken image has naturalWidth 0)
            wait_until(
                page,
                "[...document.querySelectorAll('figure.hit img')]"
                ".every(img => img.complete && img.naturalWidth > 0)",
            )
            figures = page.query_selector_all("figure.hit")
            assert len(figures) == 6
            first_alt = figures[0].query_selector("img").get_attribute("alt")
            assert shape_of(first_alt) == ("circle", "red")
            assert float(figures[0].query_selector(".score").inner_text()) > 0
            assert "6 results" in page.inner_text("#status")

            # No blue star in the collection: the results come with a notice saying so.
            page.fill("#query", "a blue star")
            page.press("#query", "Enter")
            wait_until(page, "!document.getElementById('notice').hidden")
            assert "No confident match" in page.inner_text("#notice")
            assert len(page.query_selector_all("figure.hit")) == 6

            example = images / "star-black-009.png"
            page.set_input_files("#file", str(example))
            # The image's own answer: it first, at 1.0 (the blue-star answer may also show it
            # first, as the closest star, at a text score).
            wait_until(
                page,
                f"document.querySelector('figure.hit img')?.alt === {json.dumps(str(example))}"
                " && parseFloat(document.querySelector('figure.hit .score').innerText) > 0.99",
            )
            # An indexed image finds itself: a confident match, no notice.
            assert page.evaluate("document.getElementById('notice').hidden")
            # the page runs under its Content-Security-Policy without breaking any of it
            assert not [line for line in console if "Content Security Policy" in line], console
        finally:
            browser.close()


def wait_until(page, expression: str, timeout: float = 30) -> None:
    """Poll a JavaScript expression until it is true. (Playwright's wait_for_function builds
    its predicate with eval, which the page's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.1)


CLIP_FRONT_CALLS = """
async (back) => {
  // What clip-front's ClipService does: JSON.stringify'd bodies, no Content-Type header
  // (so the browser sends text/plain), from a page of another origin.
  const post = async (path, body) => JSON.parse(await (await fetch(
    back + path, {method: 'POST', body: JSON.stringify(body)})).text())
  const indices = JSON.parse(await (await fetch(back + '/indices-list')).text())
  const results = await post('/knn-service', {
    text: 'a cyan heart', image: null, image_url: null, embedding_input: null,
    modality: 'image', num_images: 3, indice_name: indices[0], num_result_ids: 8,
    use_mclip: false, deduplicate: true, use_safety_model: true,
    use_violence_detector: true, aesthetic_score: '', aesthetic_weight: '0.5'})
  const metadata = await post('/metadata', {ids: results.slice(3).map(r => r.id),
                                           indice_name: indices[0]})
  const image = new Image()
  image.src = results[0].url
  await image.decode()
  return {indices, results, metadata, width: image.naturalWidth}
}
"""


@pytest.mark.browser
def test_clip_front_calls_from_another_origin_in_chromium(served, tmp_path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _, _ = served
    front = tmp_path / "front"
    front.mkdir()
    (front / "index.html").write_text("<!doctype html><title>a front end</title>")
    # The front end's own origin: another port (loopback too, as Chromium keeps public pages
    # from calling loopback addresses without the user's permission).
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(front))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as front_server:
        threading.Thread(target=front_server.serve_forever, daemon=True).start()
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{front_server.server_address[1]}/index.html")
                reply = page.evaluate(CLIP_FRONT_CALLS, url)
            finally:
                browser.close()
        front_server.shutdown()
    assert reply["indices"] == ["images"]
    results = reply["results"]
    assert len(results) == 8 and shape_of(results[0]["image_path"]) == ("heart", "cyan")
    assert all({"url", "caption", "image"} <= r.keys() for r in results[:3])
    assert [m["id"] for m in reply["metadata"]] == [r["id"] for r in results[3:]]
    assert reply["width"] == 64


def launch_chromium(playwright):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return playwright.chromium.launch(
        executable_path=chromium, headless=True, args=["--no-sandbox"]
    )


def csp_complaints(console: list[str]) -> list[str]:
    return [line for line in console if "Content Security Policy" in line]


@pytest.mark.browser
def test_the_page_shows_what_was_searched_and_keeps_it_in_the_url(served) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _, images = served
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            # a shared link runs its search
            page.goto(f"{url}/?q=a+red+circle&k=6")
            wait_until(page, "document.querySelectorAll('figure.hit').length === 6")
            assert page.inner_text("#searched-text") == "Searched for “a red circle”"
            assert page.input_value("#query") == "a red circle"
            assert page.input_value("#k") == "6"
            collection = page.inner_text("#collection")
            assert re.fullmatch(r"collection images · \d+ images · model anyshot-tiny", collection)
            first = page.query_selector("figure.hit")
            assert shape_of(first.query_selector("img").get_attribute("alt")) == ("circle", "red")

            # more like this: the URL and the line above the results say so, with a thumbnail
            clicked = first.get_attribute("data-id")
            first.query_selector("img").click()
            wait_until(page, f"location.search === '?id={clicked}&k=6'")
            assert page.inner_text("#searched-text") == f"More like #{clicked}"
            wait_until(
                page,
                "(() => { const i = document.getElementById('searched-image');"
                f" return !i.hidden && i.src.includes('/thumbs/{clicked}')"
                " && i.complete && i.naturalWidth > 0 })()",
            )
            wait_until(page, f"document.querySelector('figure.hit').dataset.id === '{clicked}'")

            # back and forward move between the searches
            page.go_back()
            wait_until(page, "location.search === '?q=a+red+circle&k=6'")
            wait_until(
                page,
                "document.getElementById('searched-text').textContent"
                " === 'Searched for “a red circle”'",
            )
            page.go_forward()
            wait_until(page, f"location.search === '?id={clicked}&k=6'")
            wait_until(
                page,
                f"document.getElementById('searched-text').textContent === 'More like #{clicked}'",
            )

            # an upload shows the file's name and a preview
            example = images / "star-black-009.png"
            page.set_input_files("#file", str(example))
            wait_until(
                page,
                f"document.querySelector('figure.hit img')?.alt === {json.dumps(str(example))}",
            )
            assert page.inner_text("#searched-text") == "Searched by the image star-black-009.png"
            wait_until(
                page,
                "(() => { const i = document.getElementById('searched-image');"
                " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0 })()",
            )
            assert page.evaluate("location.search") == ""
            page.go_back()
            wait_until(page, f"location.search === '?id={clicked}&k=6'")

            # a name query through the form
            page.select_option("#mode", "name")
            page.fill("#query", "heart")
            page.press("#query", "Enter")
            wait_until(page, "location.search === '?name=heart&k=6'")
            assert page.inner_text("#searched-text") == "Searched for the name “heart”"
            assert not csp_complaints(console), console
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        (
            "/docs",
            "document.querySelectorAll('.opblock').length > 5"
            " && document.querySelector('.info .title')?.textContent.includes('anyshot')",
        ),
        (
            "/redoc",
            "[...document.querySelectorAll('h1')].some(h => h.textContent.includes('anyshot'))",
        ),
    ],
)
def test_the_api_docs_render_offline_from_this_server_only(served, path, rendered) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _, _ = served
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            console: list[str] = []
            requested: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{url}{path}")
            wait_until(page, rendered)
            assert requested and all(
                r.startswith((f"{url}/", "data:", "blob:")) for r in requested
            ), requested
            assert f"{url}/openapi.json" in requested
            assert not csp_complaints(console), console
        finally:
            browser.close()


@pytest.mark.browser
def test_the_page_lists_photos_by_date_range_and_place(served, tmp_path) -> None:
    """Last in this module: it adds the trip photos to the served collection."""
    from photo_files import write_trip

    sync_api = pytest.importorskip("playwright.sync_api")
    url, store, _ = served
    write_trip(tmp_path / "trip")
    code, _, err = run("index", str(tmp_path / "trip"), "--store", str(store), "--json")
    assert code == 0, err
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{url}/")
            page.fill("#place", "pt")  # two letters: a country
            page.press("#place", "Enter")
            page.wait_for_selector("figure.hit .meta")
            metas = [m.inner_text() for m in page.query_selector_all("figure.hit .meta")]
            assert metas == ["2023-06-15 · Intendente, PT", "2022-08-01 · Porto, PT"]
            assert page.url.endswith("/?filter=country%3Dpt")
            page.fill("#taken-from", "2023-01-01")
            page.fill("#query", "a photo")
            page.press("#query", "Enter")
            wait_until(page, "document.querySelectorAll('figure.hit').length === 1")
            assert page.inner_text("figure.hit .meta").startswith("2023-06-15")
            assert "taken>=2023-01-01" in page.inner_text("#searched-text")
        finally:
            browser.close()
