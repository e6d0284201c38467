"""Index jobs of the API server and the store that threads share."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.access import AccessPolicy
from indexer.config import ApiSettings
from indexer.errors import ConfigError, SourceError
from indexer.indexing import IndexReport
from indexer.schema import ModelIdentity
from indexer.stores.qdrant_server import QdrantClientStore
from indexer.stores.serialized import SerializedStore
from search.serving.index_jobs import IndexJobs


class BatchedIndexer:
    """Stands in for ImageSearch.index: ``batches`` batches of 10, a pause after each."""

    def __init__(self, batches: int = 5, pause: float = 0.02) -> None:
        self.batches = batches
        self.pause = pause
        self.sources: list[str] = []
        self.policies: list[AccessPolicy | None] = []

    def index(
        self, source: str, *, runner: str, progress, access: AccessPolicy | None = None
    ) -> IndexReport:
        assert runner == "inline"  # a server indexes in its own process, whatever the env
        self.sources.append(source)
        self.policies.append(access)
        if source.endswith("missing"):
            raise SourceError(f"{source}: no such file or folder")
        for batch in range(1, self.batches + 1):
            time.sleep(self.pause)
            progress(10 * batch, 10 * self.batches)
        return IndexReport(indexed=10 * self.batches, seconds=0.1)


def wait_until_finished(jobs: IndexJobs, job_id: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while (job := jobs.get(job_id)).state in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return job.to_dict()


def test_jobs_run_one_after_another_and_report(tmp_path: Path) -> None:
    indexer = BatchedIndexer()
    jobs = IndexJobs(indexer)  # type: ignore[arg-type]
    try:
        first = jobs.submit(str(tmp_path / "a"))
        second = jobs.submit(str(tmp_path / "b"))
        failing = jobs.submit(str(tmp_path / "missing"))
        assert wait_until_finished(jobs, first.id)["report"]["indexed"] == 50
        done = wait_until_finished(jobs, second.id)
        assert (done["state"], done["done"], done["total"]) == ("done", 50, 50)
        failed = wait_until_finished(jobs, failing.id)
        assert failed["state"] == "failed" and "no such file" in failed["error"]
        assert indexer.sources == [str(tmp_path / n) for n in ("a", "b", "missing")]
        assert [j.id for j in jobs.jobs()] == [first.id, second.id, failing.id]
    finally:
        jobs.close()


def test_sources_must_be_absolute_and_inside_the_roots(tmp_path: Path) -> None:
    jobs = IndexJobs(BatchedIndexer(), allowed_roots=[tmp_path / "photos"])  # type: ignore[arg-type]
    try:
        with pytest.raises(ConfigError, match="absolute"):
            jobs.submit("photos")
        with pytest.raises(ConfigError, match="outside"):
            jobs.submit(str(tmp_path / "photos" / ".." / "secrets"))
        assert jobs.submit(str(tmp_path / "photos" / "2024")).state == "queued"
    finally:
        jobs.close()


def test_a_link_inside_the_roots_that_leads_outside_is_refused(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    (tmp_path / "secrets").mkdir()
    (photos / "escape").symlink_to(tmp_path / "secrets")
    (photos / "inside").symlink_to(photos / "2024")
    (tmp_path / "alias").symlink_to(photos)
    jobs = IndexJobs(BatchedIndexer(), allowed_roots=[tmp_path / "alias"])  # type: ignore[arg-type]
    try:
        for source in (photos / "escape", photos / "escape" / "x.png", "file:///etc", "http://x/"):
            with pytest.raises(ConfigError, match="outside the folders this server may index"):
                jobs.submit(str(source))
        with pytest.raises(ConfigError, match="NUL"):
            jobs.submit(str(photos) + "\0/x")
        assert jobs.submit(str(photos / "inside")).state == "queued"
        assert jobs.submit(str(tmp_path / "alias" / "2024")).state == "queued"
    finally:
        jobs.close()


def test_runs_get_the_server_policy_and_the_roots_are_reread_after_each(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    api = ApiSettings(index_roots=[photos])
    indexer = BatchedIndexer(batches=1, pause=0)
    finished: list[str] = []
    jobs = IndexJobs(
        indexer,  # type: ignore[arg-type]
        allowed_roots=api.index_roots,
        access=AccessPolicy.for_server(api, roots=api.index_roots),
        on_finished=lambda: finished.append("refreshed"),
    )
    try:
        done = wait_until_finished(jobs, jobs.submit(str(photos)).id)
        failed = wait_until_finished(jobs, jobs.submit(str(photos / "missing")).id)
    finally:
        jobs.close()
    assert (done["state"], failed["state"]) == ("done", "failed")
    assert finished == ["refreshed", "refreshed"]
    policy = indexer.policies[0]
    assert policy is not None
    assert (policy.roots, policy.fetch_urls, policy.private_hosts) == ((str(photos),), False, False)


def test_without_roots_runs_still_fetch_no_url(tmp_path: Path) -> None:
    indexer = BatchedIndexer(batches=1, pause=0)
    jobs = IndexJobs(indexer)  # type: ignore[arg-type]
    try:
        wait_until_finished(jobs, jobs.submit(str(tmp_path)).id)
    finally:
        jobs.close()
    policy = indexer.policies[0]
    assert policy is not None and (policy.roots, policy.fetch_urls) == (None, False)


def test_closing_stops_the_running_job_between_batches(tmp_path: Path) -> None:
    jobs = IndexJobs(BatchedIndexer(batches=1000, pause=0.01))  # type: ignore[arg-type]
    running = jobs.submit(str(tmp_path / "big"))
    queued = jobs.submit(str(tmp_path / "later"))
    while jobs.get(running.id).done == 0:
        time.sleep(0.01)
    jobs.close(timeout=10)
    stopped = jobs.get(running.id)
    assert stopped.state == "failed" and "resume" in stopped.error
    assert 0 < stopped.done < stopped.total
    assert jobs.get(queued.id).state == "failed"
    with pytest.raises(ConfigError, match="shutting down"):
        jobs.submit(str(tmp_path / "after"))


def test_serialized_store_lets_a_scroll_and_writes_interleave() -> None:
    store = SerializedStore(QdrantClientStore(":memory:"))
    store.bind_model(ModelIdentity("test", None, 4))
    rng = np.random.default_rng(0)

    def add(first: int, count: int) -> None:
        vectors = rng.normal(size=(count, 4)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.upsert(
            list(range(first, first + count)),
            vectors,
            [{"uri": f"/{i}"} for i in range(first, first + count)],
        )

    add(0, 50)
    writer = threading.Thread(target=lambda: [add(1000 + 10 * i, 10) for i in range(20)])
    scrolled = []
    for point in store.scroll(batch_size=7):
        if not writer.is_alive() and not scrolled:
            writer.start()  # writes go on while the scroll is between batches
        scrolled.append(point.id)
    writer.join()
    assert set(range(50)) <= set(scrolled)
    assert store.count() == 250
    assert len(store.search(np.ones(4, np.float32) / 2, limit=5)) == 5
    store.close()
