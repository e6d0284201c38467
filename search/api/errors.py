"""Errors as JSON replies: anyshot's by class, bad input 4xx, anything else 500.

Every error reply is an :class:`~search.messages.ErrorBody` (``{"error": ..., "type": ...}``);
``type`` names the anyshot error class, so that a remote client raises the same class with the
same message (:func:`search.messages.error_from_reply`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer.errors import (
    AnyshotError,
    BusyError,
    ConfigError,
    DiskSpaceError,
    ImageDecodeError,
    ModelError,
    ModelMismatchError,
    ModelUnavailableError,
    ParquetError,
    QueryError,
    SourceError,
    StoreLockedError,
    StoreNotFoundError,
    StoreReadOnlyError,
)
from search.api.guards import BodyTooLarge
from search.messages import ErrorBody
from search.serving.served_images import NotServable

logger = logging.getLogger(__name__)

ERROR_STATUS: list[tuple[type[AnyshotError], int]] = [
    (NotServable, 404),
    (StoreNotFoundError, 404),
    (ModelMismatchError, 409),
    (StoreLockedError, 409),
    (StoreReadOnlyError, 409),
    (DiskSpaceError, 507),
    (ModelUnavailableError, 503),
    (ModelError, 503),
    (QueryError, 400),
    (ImageDecodeError, 400),
    (ConfigError, 400),
    (SourceError, 400),
    (ParquetError, 400),
    (BusyError, 429),
]
"""Status codes of anyshot's errors, most specific first; other errors (store failures) 503."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422, 429, 503)
}
"""The error replies every operation documents."""


def error_reply(status: int, message: str, kind: str) -> JSONResponse:
    """An error as JSON: ``{"error": message, "type": kind}``."""
    return JSONResponse({"error": message, "type": kind}, status_code=status)


def status_of(exc: AnyshotError) -> int:
    """The HTTP status of one of anyshot's errors."""
    return next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 503)


def describe_validation(errors: Any) -> str:
    """One line from pydantic's validation errors."""
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "invalid request: " + "; ".join(parts)


async def anyshot_error(_: Request, exc: Exception) -> JSONResponse:
    """One of anyshot's errors: its class, its line, its status."""
    assert isinstance(exc, AnyshotError)
    if isinstance(exc, NotServable) and exc.worth_logging:
        # The client learns only that; the log says why (a crafted point, a gone file).
        logger.warning("not serving %s: %s", exc.uri, exc.reason)
    reply = error_reply(status_of(exc), str(exc), type(exc).__name__)
    if isinstance(exc, BusyError):
        reply.headers["Retry-After"] = "1"
    return reply


async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """A request that is not what the operation takes: 422, one line."""
    assert isinstance(exc, RequestValidationError)
    return error_reply(422, describe_validation(exc.errors()), "ValidationError")


async def body_too_large(_: Request, exc: Exception) -> JSONResponse:
    """A body over the limit: 413; the rest of it is never read, the connection closes."""
    assert isinstance(exc, BodyTooLarge)
    reply = error_reply(413, str(exc.detail), "TooLarge")
    reply.headers["Connection"] = "close"
    return reply


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's errors (an unknown path, a wrong method) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    return error_reply(exc.status_code, str(exc.detail), "HTTPError")


async def too_deep(_: Request, exc: Exception) -> JSONResponse:
    """JSON nested deeper than Python parses: 400, never a 500."""
    return error_reply(400, "the request is nested too deeply", "QueryError")


async def internal_error(_: Request, exc: Exception) -> JSONResponse:
    """Anything else: logged with its traceback, 500 with no detail."""
    logger.exception("internal error", exc_info=exc)
    return error_reply(500, "internal error (see the server log)", "InternalError")


def add_error_handlers(app: FastAPI) -> None:
    """Map errors to JSON replies (see the module's docs)."""
    app.add_exception_handler(AnyshotError, anyshot_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(Exception, internal_error)
