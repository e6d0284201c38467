"""Index runs inside the server: ``POST /index`` starts one, ``GET /index/{id}`` follows it.

Runs go to a background thread (:mod:`search.serving.index_jobs`) while searches keep
answering; sources are paths of the server's machine, within ``api.index_roots`` when set.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from starlette.exceptions import HTTPException as StarletteHTTPException

from search.api.dependencies import Server
from search.messages import IndexJobBody, IndexRequest

router = APIRouter(tags=["index"])


@router.post("/index", status_code=202)
def start_index(server: Server, body: IndexRequest) -> IndexJobBody:
    """Index a folder, list file or image on the server, in the background.

    Searches keep answering while it runs. Runs queue up: one at a time.
    """
    job = server.jobs.submit(body.source)
    return IndexJobBody.model_validate(job.to_dict())


@router.get("/index")
async def list_index_jobs(server: Server) -> list[IndexJobBody]:
    """Recent index runs, oldest first."""
    return [IndexJobBody.model_validate(job.to_dict()) for job in server.jobs.jobs()]


@router.get("/index/{job_id}")
async def index_job(
    server: Server, job_id: Annotated[str, PathParam(max_length=64)]
) -> IndexJobBody:
    """One index run: state, progress, and its report once done."""
    job = server.jobs.get(job_id)
    if job is None:
        raise StarletteHTTPException(404, f"no index job {job_id}")
    return IndexJobBody.model_validate(job.to_dict())
