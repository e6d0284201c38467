"""The built-in search page at ``/`` (its files under ``/static``) and the interactive API docs
(Swagger UI at ``/docs``, ReDoc at ``/redoc``, their files under ``/docs-assets``).

The docs' files come from the installed ``fastapi-offline`` package, not a CDN, so they work
offline; no page runs inline script (:data:`search.api.guards.DOCS_POLICY`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def add_page(app: FastAPI) -> None:
    """The search page at / and its files under /static."""
    web = resources.files("search") / "web"
    with resources.as_file(web) as folder:
        app.mount("/static", StaticFiles(directory=folder), name="static")
        page = (Path(folder) / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page() -> HTMLResponse:
        return HTMLResponse(page)


def add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, with their files under /docs-assets."""
    assets = resources.files("fastapi_offline") / "static"
    with resources.as_file(assets) as folder:
        app.mount("/docs-assets", StaticFiles(directory=folder), name="docs-assets")
    web = resources.files("search") / "web"
    pages = {name: (web / f"{name}.html").read_text() for name in ("docs", "redoc")}

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(pages["docs"])

    @app.get("/redoc", response_class=HTMLResponse, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(pages["redoc"])
