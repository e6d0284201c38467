"""The face of a collection that a running ``anyshot serve`` holds, over HTTP.

:class:`RemoteImageSearch` implements :class:`~search.face.CollectionClient` with the HTTP API's
endpoints and the bodies of :mod:`search.messages`: what it sends is what the local client
answers, and what comes back is rebuilt as the same result types. A server's error comes back
as the anyshot error of the same class and message (:func:`~search.messages.error_from_reply`);
a server that cannot be reached is one :class:`~indexer.errors.StoreError` line naming its URL.

Files stay on the machine they belong to: example images are read here (the face does it), a
snapshot is exported into a folder here and loaded from a folder here
(:mod:`search.remote_snapshots`), and only an index run reads the server's own files.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from indexer.config import Runner
from indexer.errors import AnyshotError, ConfigError, StoreError
from indexer.progress import ProgressCallback
from search.face import CollectionClient, CollectionInfo
from search.messages import (
    API_KEY_HEADER,
    SERVICE_NAME,
    ConceptBody,
    ConceptRequest,
    DuplicateGroupBody,
    DuplicatesRequest,
    ErrorBody,
    HealthBody,
    IndexJobBody,
    IndexRequest,
    InfoBody,
    SearchReply,
    SearchRequest,
    TagReportBody,
    TagRequest,
    error_from_reply,
)
from search.results import DuplicateGroup, Hit, SearchResult, TagReport

if TYPE_CHECKING:
    from indexer.indexing import IndexReport
    from indexer.transfer import LoadReport
    from search.concepts import Concept

DEFAULT_TIMEOUT = 60.0
"""Seconds a quick request (a search, info, a page of an export) may take."""
HEALTH_TIMEOUT = 5.0
"""Seconds ``GET /healthz`` may take when telling an anyshot server from a Qdrant server."""
SERVER_RUNNERS = ("auto", "inline")
"""Runners an index run through a server accepts: the server runs it in its own process."""


class RemoteImageSearch(CollectionClient):
    """Index and search the collection of a running ``anyshot serve``.

    Args:
        url: The server's base URL (``http://127.0.0.1:8000``).
        api_key: The server's API key (header ``X-API-Key``), if it needs one.
        timeout: Seconds a quick request may take.
        work_timeout: Seconds a long request (tagging, duplicates, a load) may take; None
            waits as long as the server works.
        poll_seconds: How often an index run's progress is asked for.

    Attributes:
        url: The server's base URL, as given (without a trailing slash).
        location: The same URL: where the collection is, seen from here.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        work_timeout: float | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.url = url.rstrip("/")
        self.location = self.url
        self.poll_seconds = poll_seconds
        self._work_timeout = httpx.Timeout(timeout, read=work_timeout)
        headers = {API_KEY_HEADER: api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    # -- HTTP --------------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        long: bool = False,
        allow: Sequence[int] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """One request to the server; its error replies raised as anyshot errors.

        Args:
            method: The HTTP method.
            path: The path (and query) under the server's URL.
            long: The request may run as long as the work takes (``work_timeout``).
            allow: Error statuses to return as replies instead of raising.
            **kwargs: Passed to :meth:`httpx.Client.request` (``json=``, ``content=``, ...).

        Raises:
            StoreError: The server cannot be reached or does not answer in time.
            AnyshotError: The server refused: the error it raised, same class and message.
        """
        if long:
            kwargs.setdefault("timeout", self._work_timeout)
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise StoreError(
                f"the anyshot server at {self.url} did not answer {method} {path} in time"
            ) from exc
        except httpx.HTTPError as exc:
            reason = one_line(exc) or type(exc).__name__
            raise StoreError(f"cannot reach the anyshot server at {self.url}: {reason}") from exc
        if reply.is_error and reply.status_code not in allow:
            raise self._refusal(reply)
        return reply

    def send_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`send`, returning the reply's JSON."""
        reply = self.send(method, path, **kwargs)
        try:
            return reply.json()
        except ValueError as exc:
            raise StoreError(
                f"the anyshot server at {self.url} answered {method} {path} with something "
                "other than JSON"
            ) from exc

    def _refusal(self, reply: httpx.Response) -> AnyshotError:
        try:
            body = ErrorBody.model_validate(reply.json())
        except ValueError:
            # Not our error shape: a proxy, or not an anyshot server at all.
            shown = one_line(reply.text)[:200] or reply.reason_phrase
            return StoreError(
                f"the server at {self.url} answered {reply.status_code} to "
                f"{reply.request.method} {reply.request.url.path}: {shown}"
            )
        return error_from_reply(body)

    def healthy(self) -> bool:
        """True when the server answers its health check as anyshot."""
        return anyshot_health(self.url, client=self._http) is not None

    # -- the face ----------------------------------------------------------------------------------

    def index(
        self,
        source: str | Path,
        *,
        runner: Runner = "auto",
        progress: ProgressCallback | None = None,
    ) -> IndexReport:
        """Index a source on the server's machine, in the server, and wait for the run.

        A path that exists here is sent absolute (the server needs absolute paths); the server
        reads it as its own, within ``api.index_roots`` when it has them. Searches keep
        answering while the run goes.

        Raises:
            ConfigError: A runner other than ``auto`` or ``inline`` (the server runs the index
                in its own process), or a path that is not UTF-8.
            AnyshotError: The server refused the run, or the run failed (its error).
        """
        from indexer.indexing import IndexReport

        if runner not in SERVER_RUNNERS:
            raise ConfigError(
                f"the anyshot server at {self.url} runs index runs itself: runner {runner!r} "
                "cannot be used through it (stop the server, or use runner auto)"
            )
        request = IndexRequest(source=server_path(source))
        job = IndexJobBody.model_validate(
            self.send_json("POST", "/index", json=request.model_dump())
        )
        while job.state in ("queued", "running"):
            if progress is not None and job.total:
                progress(job.done, job.total)
            time.sleep(self.poll_seconds)
            job = IndexJobBody.model_validate(self.send_json("GET", f"/index/{job.id}"))
        if job.state != "done" or job.report is None:
            raise job_error(job)
        if progress is not None:
            progress(job.total, job.total)
        return IndexReport.from_dict(job.report)

    def answer(self, request: SearchRequest) -> SearchResult:
        """Answer a search through ``POST /search``."""
        body = request.model_dump(exclude_defaults=True)
        reply = SearchReply.model_validate(self.send_json("POST", "/search", json=body))
        hits = [Hit(h.id, h.uri, h.score, h.payload) for h in reply.hits]
        return SearchResult(hits, dict(reply.explain or {}))

    def define_concept(self, name: str, request: ConceptRequest) -> Concept:
        """Register a concept through ``PUT /concepts/{name}``."""
        path = concept_path(name)
        body = ConceptBody.model_validate(
            self.send_json("PUT", path, json=request.model_dump(exclude_none=True), long=True)
        )
        return concept_of(body)

    def concepts(self) -> list[Concept]:
        """The registered concepts (``GET /concepts``), by name."""
        listed = self.send_json("GET", "/concepts")
        return [concept_of(ConceptBody.model_validate(item)) for item in listed]

    def remove_concept(self, name: str) -> None:
        """Forget a concept (``DELETE /concepts/{name}``).

        Raises:
            QueryError: No concept has that name.
        """
        self.send("DELETE", concept_path(name))

    def tag(
        self,
        labels: Sequence[str],
        *,
        top: int = 1,
        min_score: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> TagReport:
        """Tag every image in the server (``POST /tags``); progress is reported once, at the end."""
        request = TagRequest(labels=list(labels), top=top, min_score=min_score)
        body = TagReportBody.model_validate(
            self.send_json("POST", "/tags", json=request.model_dump(), long=True)
        )
        if progress is not None:
            progress(body.images, body.images)
        return TagReport.from_dict(body.model_dump())

    def tag_counts(self) -> dict[str, int]:
        """Images per tag, most frequent first (``GET /tags``)."""
        counts = self.send_json("GET", "/tags")
        return {str(label): int(count) for label, count in counts.items()}

    def duplicates(
        self, *, threshold: float | None = None, progress: ProgressCallback | None = None
    ) -> list[DuplicateGroup]:
        """Groups of near-duplicates, found in the server (``POST /duplicates``)."""
        request = DuplicatesRequest(threshold=threshold)
        groups = [
            DuplicateGroupBody.model_validate(group)
            for group in self.send_json("POST", "/duplicates", json=request.model_dump(), long=True)
        ]
        if progress is not None:
            progress(1, 1)
        return [DuplicateGroup.from_dict(group.model_dump()) for group in groups]

    def info(self) -> CollectionInfo:
        """What the server's collection holds (``GET /info``)."""
        return InfoBody.model_validate(self.send_json("GET", "/info"))

    def export(
        self, folder: str | os.PathLike[str], *, progress: ProgressCallback | None = None
    ) -> int:
        """Write the server's collection as a snapshot into a folder of this machine: Parquet
        shards paged from ``GET /export/points``, each checked as it arrives, and the carried
        documents from ``GET /export/documents``.

        Raises:
            StoreNotFoundError: The server's store holds no collection.
            ParquetError: The folder already holds a snapshot, cannot be written, or a shard
                arrived damaged.
        """
        from search.remote_snapshots import export_from_server

        return export_from_server(self, folder, progress=progress)

    def load(
        self,
        folder: str | os.PathLike[str],
        *,
        trust: Sequence[str] = (),
        progress: ProgressCallback | None = None,
    ) -> LoadReport:
        """Load a snapshot folder of this machine into the server's collection.

        Every shard and row is checked here first, as a local load checks them (the report
        names the shards of this folder); the good rows go to ``POST /load`` in shards under
        the server's upload limit, where they are checked again.
        """
        from search.remote_snapshots import load_into_server

        return load_into_server(self, folder, trust=trust, progress=progress)

    def close(self) -> None:
        """Close the connections to the server."""
        self._http.close()

    def __repr__(self) -> str:
        return f"RemoteImageSearch({self.url!r})"


def anyshot_health(url: str, *, client: httpx.Client | None = None) -> HealthBody | None:
    """Ask ``URL/healthz`` whether an anyshot server answers there.

    Args:
        url: A base URL.
        client: An HTTP client to ask with (its base URL must be ``url``); None: a new one.

    Returns:
        The server's health reply when it says it is anyshot; None when something else answers
        (a Qdrant server answers ``healthz check passed``), or nothing does.
    """
    target = "/healthz" if client is not None else f"{url.rstrip('/')}/healthz"
    try:
        if client is not None:
            reply = client.get(target, timeout=HEALTH_TIMEOUT)
        else:
            reply = httpx.get(target, timeout=HEALTH_TIMEOUT)
        if reply.status_code != 200:
            return None
        health = HealthBody.model_validate(reply.json())
    except (httpx.HTTPError, ValueError):
        return None
    return health if health.service == SERVICE_NAME else None


def server_path(source: str | Path) -> str:
    """A source as a server must see it: a path that exists here is made absolute; anything
    else (a path on the server's machine, a URL) goes as given.

    Raises:
        ConfigError: A path that is not UTF-8 (a request cannot carry it).
    """
    text = os.fspath(source)
    path = os.path.abspath(text) if os.path.exists(text) else text
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{text}: a path that is not UTF-8 cannot be sent to the server; index it with "
            "the server stopped, or index a folder above it"
        ) from exc
    return path


def concept_path(name: str) -> str:
    """The URL path of a concept (any character of the name escaped, ``/`` included)."""
    return "/concepts/" + urllib.parse.quote(name, safe="")


def concept_of(body: ConceptBody) -> Concept:
    """A concept as the server describes it (its vectors stay on the server)."""
    from search.concepts import Concept

    return Concept(name=body.name, examples=list(body.examples), created=body.created)


def job_error(job: IndexJobBody) -> AnyshotError:
    """The error of a failed index run: the class the server raised when the job says it."""
    kind = job.error_type or "AnyshotError"
    message = job.error or f"the index run {job.id} ended as {job.state}"
    return error_from_reply(ErrorBody(error=message, type=kind))


def one_line(value: object) -> str:
    """Any text or error on one line (the CLI prints errors as one line)."""
    return " ".join(str(value).split())
