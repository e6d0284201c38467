"""/docs and /redoc work offline: their scripts and styles come from this server, not a CDN."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from indexer.config import build_settings
from search.api import create_app
from search.api.guards import DOCS_POLICY

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def http(tiny_store_template, tmp_path_factory) -> Iterator[TestClient]:
    _, template = tiny_store_template
    store = tmp_path_factory.mktemp("docs") / "store"
    shutil.copytree(template, store)
    settings = build_settings(store=str(store), workers=0)
    settings.api = type(settings.api).model_validate({"api_key": "sesame"})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui.css", "favicon.png", "swagger-ui-bundle.js", "docs.js"}),
        ("/redoc", {"favicon.png", "redoc.standalone.js", "redoc.js"}),
    ],
)
def test_docs_pages_reference_only_this_server_and_their_files_are_served(
    http: TestClient, page: str, assets: set[str]
) -> None:
    reply = http.get(page)  # no API key: the docs are open, as before
    assert reply.status_code == 200
    assert reply.headers["content-security-policy"] == DOCS_POLICY
    assert "'unsafe-eval'" not in DOCS_POLICY and "http" not in DOCS_POLICY
    assert "<script>" not in reply.text.replace(" ", "")  # no inline script
    references = REFERENCE.findall(reply.text)
    assert {ref.rsplit("/", 1)[-1] for ref in references} == assets
    assert not re.search(r"https?:|//", reply.text.replace("<!doctype html>", ""))
    for reference in references:
        asset = http.get(urljoin(f"http://testserver{page}", reference))
        assert asset.status_code == 200, reference
        assert len(asset.content) > 100
    script = http.get(urljoin(f"http://testserver{page}", references[-1])).text
    assert "openapi.json" in script


def test_swagger_ui_asks_no_validator_host(http: TestClient) -> None:
    assert "validatorUrl: null" in http.get("/static/docs.js").text
