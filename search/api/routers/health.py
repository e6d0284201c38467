"""``GET /healthz``: the server answers, and says it is anyshot (no API key needed)."""

from importlib import metadata

from fastapi import APIRouter

from search.messages import HealthBody


def anyshot_version() -> str:
    """The installed anyshot's version."""
    try:
        return metadata.version("anyshot")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


HEALTH = HealthBody(version=anyshot_version())

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz() -> HealthBody:
    """Liveness: the server answers, and says it is anyshot (``service``), so that a client
    tells it from a Qdrant server at the same kind of URL.

    Runs on the event loop, needing no worker thread: it answers while every thread is busy
    with slow work.
    """
    return HEALTH
