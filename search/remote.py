"""Reach the ``anyshot serve`` process that holds an embedded store open.

An embedded store allows one process. While ``anyshot serve`` has it open, the server writes
``server.json`` (its URL and pid) into the store folder (:mod:`indexer.stores.holder`);
``anyshot index`` finds the store locked, reads that file and hands the run to the server, which
indexes in a background thread while it keeps answering searches. The file is removed when the
server stops.
"""

from __future__ import annotations

import time
from typing import Any, Self

import httpx

from indexer.errors import AnyshotError, ConfigError, StoreError
from indexer.progress import ProgressCallback

API_KEY_HEADER = "X-API-Key"


class RemoteServer:
    """A small client of the anyshot HTTP API, for the CLI to hand work to a running server.

    Args:
        url: The server's base URL.
        api_key: The server's API key, if it needs one.
        timeout: Seconds per request.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {API_KEY_HEADER: api_key} if api_key else {}
        self.url = url
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreError(f"the anyshot server at {self.url} did not answer: {exc}") from exc
        if reply.status_code >= 400:
            try:
                message = reply.json().get("error") or reply.text
            except ValueError:
                message = reply.text
            raise ConfigError(f"the anyshot server at {self.url} refused: {message}")
        return reply.json()

    def healthy(self) -> bool:
        """True when the server answers its health check."""
        try:
            return self._http.get("/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def index(
        self,
        source: str,
        *,
        progress: ProgressCallback | None = None,
        poll_seconds: float = 0.5,
    ) -> dict[str, Any]:
        """Run an index job on the server and wait for it; returns its report.

        Raises:
            AnyshotError: The server refused the job or the run failed.
        """
        job = self._call("POST", "/index", json={"source": source})
        while job["state"] in ("queued", "running"):
            if progress is not None and job["total"]:
                progress(job["done"], job["total"])
            time.sleep(poll_seconds)
            job = self._call("GET", f"/index/{job['id']}")
        if job["state"] != "done":
            raise AnyshotError(f"the server's index run failed: {job['error']}")
        if progress is not None:
            progress(job["total"], job["total"])
        return dict(job["report"])

    def search(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """POST /search; returns the hits as dicts (id, uri, score, payload)."""
        return list(self._call("POST", "/search", json=request)["hits"])

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
