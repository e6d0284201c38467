"""``GET /healthz``: the server answers, and says it is anyshot (no API key needed)."""

# No "from __future__ import annotations": FastAPI reads the handlers' annotations at run
# time, and some name types local to the router factories.

from importlib import metadata

from fastapi import APIRouter

from search.messages import HealthBody


def anyshot_version() -> str:
    """The installed anyshot's version."""
    try:
        return metadata.version("anyshot")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


def router() -> APIRouter:
    """The health operation."""
    routes = APIRouter(tags=["service"])
    health = HealthBody(version=anyshot_version())

    @routes.get("/healthz")
    async def healthz() -> HealthBody:
        """Liveness: the server answers, and says it is anyshot (``service``), so that a client
        tells it from a Qdrant server at the same kind of URL.

        Runs on the event loop, needing no worker thread: it answers while every thread is
        busy with slow work.
        """
        return health

    return routes
