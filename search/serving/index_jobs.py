"""Index runs inside the process that owns the store, in a background thread.

An embedded store (Qdrant Edge) allows one process. The HTTP API server owns it, so an index
run meant for that store runs here, as a job of :class:`IndexJobs`, while the server goes on
answering searches on the same open store (its client, :meth:`ImageSearch.for_server`, lets the
threads take turns per store call). One job runs at a time; later ones wait in line.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from indexer.access import AccessPolicy, resolve_roots
from indexer.errors import AnyshotError, ConfigError
from search.client import ImageSearch
from search.serving.server_paths import check_server_path

logger = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]

KEPT_JOBS = 100
"""Finished jobs remembered for status requests; older ones are forgotten."""


class IndexCancelled(Exception):
    """Raised between batches to stop a run when the server shuts down."""


@dataclass
class IndexJob:
    """One index run and how far it got.

    Attributes:
        id: The job's id (hex).
        source: What is indexed (absolute path or list file).
        state: queued, running, done or failed.
        done, total: Images processed so far, of those to embed.
        report: The run's summary once done (``IndexReport.to_dict()``).
        error: One line saying why the run failed.
        error_type: The class of the error that ended it (``SourceError``, ...), so that a
            remote client raises what a local run would.
    """

    id: str
    source: str
    state: JobState = "queued"
    done: int = 0
    total: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the job as JSON-ready values."""
        return {
            "id": self.id,
            "source": self.source,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "report": self.report,
            "error": self.error,
            "error_type": self.error_type,
            "created": self.created,
            "finished": self.finished,
        }


class IndexJobs:
    """Run index jobs one after another in a background thread, against a shared client.

    Args:
        client: The server's client; its store must tolerate calls from several threads.
        allowed_roots: Folders that sources must lie in (links resolved); empty allows any
            source.
        access: What the runs may read (every file, link and list entry is held to it); None:
            :meth:`AccessPolicy.for_server` defaults (``allowed_roots``, no URL fetching).
        on_finished: Called after each run, done or failed (the server re-reads the roots it
            serves from, which a run records).
    """

    def __init__(
        self,
        client: ImageSearch,
        *,
        allowed_roots: Sequence[str | Path] | None = None,
        access: AccessPolicy | None = None,
        on_finished: Callable[[], object] | None = None,
    ) -> None:
        self.client = client
        self.allowed_roots = resolve_roots(allowed_roots or [])
        self.access = access or AccessPolicy(
            roots=self.allowed_roots or None, fetch_urls=False, private_hosts=False
        )
        self.on_finished = on_finished
        self._jobs: OrderedDict[str, IndexJob] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="anyshot-index", daemon=True)
        self._worker.start()

    def submit(self, source: str) -> IndexJob:
        """Queue an index run of ``source`` (a folder, list file or image on this machine).

        Raises:
            ConfigError: The source is not an absolute path, or, links resolved, lies outside
                the allowed roots.
        """
        check_server_path(source, self.allowed_roots)
        job = IndexJob(id=uuid.uuid4().hex, source=source)
        with self._wake:
            if self._stopping:
                raise ConfigError("the server is shutting down")
            self._jobs[job.id] = job
            self._forget_old()
            self._wake.notify()
        return job

    def get(self, job_id: str) -> IndexJob | None:
        """The job with this id, if it is still remembered."""
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[IndexJob]:
        """All remembered jobs, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def busy(self) -> bool:
        """True while a job runs or waits."""
        with self._lock:
            return any(job.state in ("queued", "running") for job in self._jobs.values())

    def close(self, timeout: float | None = None) -> None:
        """Stop taking jobs, stop the running one after its batch, drop queued ones."""
        with self._wake:
            self._stopping = True
            for job in self._jobs.values():
                if job.state == "queued":
                    job.state, job.error = "failed", "the server shut down before the run began"
            self._wake.notify()
        self._worker.join(timeout)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state in ("done", "failed")]
        for job_id in finished[: max(0, len(self._jobs) - KEPT_JOBS)]:
            del self._jobs[job_id]

    def _next(self) -> IndexJob | None:
        with self._wake:
            while True:
                if self._stopping:
                    return None
                queued = next((j for j in self._jobs.values() if j.state == "queued"), None)
                if queued is not None:
                    queued.state = "running"
                    return queued
                self._wake.wait()

    def _run(self) -> None:
        while (job := self._next()) is not None:
            self._run_one(job)

    def _run_one(self, job: IndexJob) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            if self._stopping:
                # Between batches: what was written stays, and the next run resumes from it.
                raise IndexCancelled("the server shut down during the run; run it again to resume")

        state: JobState = "failed"
        try:
            report = self.client.index(
                job.source, runner="inline", progress=progress, access=self.access
            )
        except (AnyshotError, IndexCancelled) as exc:
            job.error = str(exc)
            job.error_type = type(exc).__name__ if isinstance(exc, AnyshotError) else None
        except Exception as exc:  # a bug must not kill the worker thread of the server
            logger.exception("index job %s failed", job.id)
            job.error = f"internal error: {exc}"
        else:
            job.report = report.to_dict()
            state = "done"
        if self.on_finished is not None:
            # Before the job says it is over, so that a client that saw "done" finds its images.
            try:
                self.on_finished()
            except Exception:  # the next run or a restart reads them again
                logger.exception("after index job %s", job.id)
        job.finished = time.time()
        job.state = state
