"""ASGI middleware of the HTTP API: the API key, a body size limit counted while reading,
security headers, and CORS (:func:`add_guards` puts them in order).

All are plain ASGI (no buffering of bodies, no task groups around ``receive``):
:class:`ApiKeyGuard` answers 401 before a byte of the body is read; :class:`BodyLimit` counts
the bytes of every request body as they arrive, chunked bodies included, and stops reading at
the limit; :class:`SecurityHeaders` adds ``X-Content-Type-Options: nosniff`` to every reply
and a Content-Security-Policy to every reply (the page's, the API docs', or a strict one).
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware

from indexer.config import Settings
from search.messages import API_KEY_HEADER

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The built-in page: its own script and style files only, no inline code, no other origin."""

STRICT_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
"""JSON, images and everything else: nothing in them may run, load or be framed."""

DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The interactive API docs: scripts and files of this server only (no CDN, no inline script);
inline styles, which Swagger UI and ReDoc set as they render."""

OPEN_PATHS = ("/healthz", "/docs", "/redoc", "/openapi.json", "/static/")
"""Paths that need no API key: health, documentation and the built-in page's files."""

DOCS_PATHS = ("/docs", "/redoc")
"""The pages of the interactive API docs (their files are under ``/docs-assets``)."""


class BodyTooLarge(HTTPException):
    """A request body over the limit (413); raised while it is being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


def json_error(
    status: int, message: str, kind: str, *, close: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two ASGI messages of a JSON error reply; ``close`` ends the connection after it
    (for a body that is left unread)."""
    body = json.dumps({"error": message, "type": kind}, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    start = {"type": "http.response.start", "status": status, "headers": headers}
    return start, {"type": "http.response.body", "body": body}


class ApiKeyGuard:
    """Answer 401 to requests without the API key (header or ``api_key`` query parameter).

    Open without a key: ``OPTIONS`` (CORS preflights), the page at ``/`` and paths starting
    with one of ``open_paths`` (health, docs, the page's files).

    Args:
        app: The ASGI app.
        key: The key.
        header: The header that carries it.
        open_paths: Path prefixes that need no key.
    """

    def __init__(self, app: ASGIApp, *, key: str, header: str, open_paths: tuple[str, ...]):
        self.app = app
        self.key = key.encode()
        self.header_name = header
        self.header = header.lower().encode("latin-1")
        self.open_paths = open_paths

    def needs_key(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        return scope["method"] != "OPTIONS" and path != "/" and not path.startswith(self.open_paths)

    def given_key(self, scope: Scope) -> bytes | None:
        for name, value in scope.get("headers", ()):
            if name.lower() == self.header:
                return value
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get("api_key")
        return values[-1].encode("latin-1", "replace") if values else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.needs_key(scope):
            given = self.given_key(scope)
            if not given or not secrets.compare_digest(given, self.key):
                for message in json_error(
                    401, f"missing or wrong API key (header {self.header_name})", "Unauthorized"
                ):
                    await send(message)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, without reading past the limit.

    A declared ``Content-Length`` over the limit is refused before a byte is read; otherwise
    (chunked bodies, or a length that lies) the bytes are counted as the app reads them, and
    :class:`BodyTooLarge` is raised in the app at the first chunk past the limit, so that the
    app's error handler answers 413 and nothing more is read.

    Args:
        app: The ASGI app.
        limit: The most bytes a body may have.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
        if declared and (not declared[0].isdigit() or int(declared[0]) > self.limit):
            for message in json_error(
                413, f"request body larger than {self.limit} bytes", "TooLarge", close=True
            ):
                await send(message)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


class SecurityHeaders:
    """Add ``nosniff`` to every reply, and a Content-Security-Policy by path.

    The page (``/``) gets :data:`PAGE_POLICY`, the interactive docs :data:`DOCS_POLICY`,
    everything else :data:`STRICT_POLICY` (so that even a file a browser would render runs
    nothing).

    Args:
        app: The ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        policy = (
            PAGE_POLICY if path == "/" else DOCS_POLICY if path in DOCS_PATHS else STRICT_POLICY
        )

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", ())
                    if k.lower() not in (b"x-content-type-options", b"content-security-policy")
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                headers.append((b"content-security-policy", policy.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def add_guards(app: FastAPI, settings: Settings) -> None:
    """API key, request size limit, security headers and CORS (outermost, so that errors carry
    CORS headers)."""
    # Added last is outermost: CORS, then headers, then the key check, then the body limit.
    app.add_middleware(BodyLimit, limit=settings.api.max_upload_bytes)
    if settings.api.api_key is not None:
        app.add_middleware(
            ApiKeyGuard,
            key=settings.api.api_key.get_secret_value(),
            header=API_KEY_HEADER,
            open_paths=OPEN_PATHS,
        )
    app.add_middleware(SecurityHeaders)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["*"],
        )
