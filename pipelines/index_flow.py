"""The indexing flow: keep a collection in step with a source of images, under Prefect.

The flow orchestrates; each task wraps one :mod:`indexer.indexing` step. Two ways to run the
batches:

- ``runner="local"``: images are decoded in worker processes ahead of the model
  (:func:`indexer.prepare.prepare_batches`) and embedded in the flow's process;
- ``runner="dask"``: each batch is decoded and embedded by a task on a Dask cluster (an
  existing one at ``dask_address``, or a local one). With a Qdrant server as the store the
  workers write their batches themselves; with the embedded store, which allows one writer,
  the vectors come back and the flow's process writes them.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import TaskRunner

from indexer.access import AccessPolicy
from indexer.config import (
    IndexSettings,
    ModelSettings,
    Settings,
    StoreSettings,
    build_settings,
    model_for_collection,
)
from indexer.discover import DiscoveryProblem
from indexer.embed import Embedder, shared_embedder
from indexer.errors import AnyshotError, ConfigError
from indexer.indexing import (
    IndexPlan,
    IndexReport,
    SourceScope,
    discover_source,
    embed_batch,
    finish_index,
    pixel_pipeline,
    plan_index,
    refuse_emptying,
    source_scope,
    write_batch,
)
from indexer.parquet_store import ParquetShardWriter
from indexer.prepare import ImageJob, PreparedBatch, prepare_batches, split_batches
from indexer.run_folders import is_folder_location, run_folders
from indexer.schema import ImageRecord
from indexer.skip_report import SkipReport
from indexer.store import MEMORY_LOCATION, VectorStore, open_store

Runner = Literal["local", "dask"]
RUNNERS = ("local", "dask")
_PROGRESS_HOOKS: list[Callable[[int, int], None]] = []
"""Progress callbacks of flows run in this process by :func:`run_index_flow`."""
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 2}
"""Retries for tasks whose failures can be passing I/O trouble (a store briefly unreachable)."""


@dataclass
class EmbeddedBatch:
    """A batch back from a worker: the prepared images (pixels dropped) and their vectors."""

    batch: PreparedBatch
    vectors: np.ndarray
    written: bool = False


@task(name="discover", cache_policy=NO_CACHE)
def discover_task(
    source: str, settings: IndexSettings
) -> tuple[list[ImageRecord], list[DiscoveryProblem]]:
    """Find the images of the source (a run started here may read anything)."""
    return discover_source(source, settings, AccessPolicy.for_index(settings))


@task(name="plan", cache_policy=NO_CACHE, **IO_RETRIES)
def plan_task(
    records: list[ImageRecord],
    store: VectorStore,
    scope: SourceScope | None,
    skip_report: SkipReport | None,
    problems: list[DiscoveryProblem],
    prune: bool,
) -> IndexPlan:
    """Compare the source with the store: new, changed, unchanged, vanished, kept."""
    return plan_index(
        records, store, scope=scope, skip_report=skip_report, problems=problems, prune=prune
    )


@task(name="embed", cache_policy=NO_CACHE)
def embed_task(embedder: Embedder, batch: PreparedBatch) -> np.ndarray:
    """Embed one prepared batch in the flow's process."""
    return embed_batch(embedder, batch)


@task(name="write", cache_policy=NO_CACHE, **IO_RETRIES)
def write_task(
    store: VectorStore,
    batch: PreparedBatch,
    vectors: np.ndarray,
    parquet: ParquetShardWriter | None,
) -> None:
    """Write one embedded batch to its Parquet shard and the store."""
    write_batch(store, batch, vectors, parquet)


@task(name="prepare-embed", cache_policy=NO_CACHE, **IO_RETRIES)
def prepare_embed_task(
    jobs: list[ImageJob],
    model: ModelSettings,
    index: IndexSettings,
    store: StoreSettings | None,
    parquet_dir: str | None,
) -> EmbeddedBatch:
    """Decode and embed one batch on a worker; write it too when ``store`` is given."""
    embedder = shared_embedder(model)
    batch = pixel_pipeline(embedder, index).prepare(jobs)
    vectors = embed_batch(embedder, batch)
    written = store is not None
    if written:
        parquet = ParquetShardWriter(parquet_dir, embedder.identity) if parquet_dir else None
        with open_store(store) as worker_store:
            write_batch(worker_store, batch, vectors, parquet)
    return EmbeddedBatch(replace(batch, pixels=batch.pixels[:0]), vectors, written)


@task(name="finish", cache_policy=NO_CACHE, **IO_RETRIES)
def finish_task(
    store: VectorStore, report: IndexReport, plan: IndexPlan, skip_report: SkipReport | None
) -> None:
    """Remove vanished images, record skipped files and the run's roots, optimise the index."""
    finish_index(store, report, plan, skip_report)


def _local_batches(
    plan: IndexPlan, embedder: Embedder, settings: Settings
) -> Iterator[EmbeddedBatch]:
    pipeline = pixel_pipeline(embedder, settings.index)
    for batch in prepare_batches(
        plan.jobs, pipeline, batch_size=settings.index.batch_size, workers=settings.index.workers
    ):
        yield EmbeddedBatch(batch, embed_task(embedder, batch))


def _dask_batches(
    plan: IndexPlan,
    model: ModelSettings,
    settings: Settings,
    parquet_dir: Path | None,
    window: int = 8,
) -> Iterator[EmbeddedBatch]:
    # Workers can reach a Qdrant server themselves; an embedded store has one writer: us.
    location = settings.store.location
    direct = not is_folder_location(location) and location != MEMORY_LOCATION
    worker_store = settings.store if direct else None
    worker_parquet = str(parquet_dir) if direct and parquet_dir else None
    pending: deque[Any] = deque()
    for chunk in split_batches(plan.jobs, settings.index.batch_size):
        pending.append(
            prepare_embed_task.submit(chunk, model, settings.index, worker_store, worker_parquet)
        )
        if len(pending) >= window:  # bounded: results wait in memory until written
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@flow(name="index-images", persist_result=False, log_prints=False)
def index_images(
    source: str,
    model: str | None = None,
    pretrained: str | None = None,
    store: str | None = None,
    index: dict[str, Any] | None = None,
    runner: str = "local",
) -> dict[str, Any]:
    """Index the images of ``source`` (folder, list file or one image) into the store.

    Args:
        source: Folder, list file (.txt, .parquet) or image.
        model: Model name; default: the collection's, else ``ANYSHOT_MODEL__NAME``.
        pretrained: Pretrained tag or checkpoint file.
        store: Store location; default ``ANYSHOT_STORE__LOCATION``.
        index: Index settings (``batch_size``, ``workers``, ``include_hidden``, ...).
        runner: ``local`` or ``dask`` (the task runner must match: see run_index_flow).

    Settings not given here come from ``ANYSHOT_*`` variables. Returns the summary of
    ``anyshot index --json``.
    """
    # `runner` is a plain str: flow parameters are validated from the annotations, which must
    # resolve in a deployment's process too.
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}: use local or dask")
    logger = get_run_logger()
    started = time.perf_counter()
    settings = build_settings(store=store, model=model, pretrained=pretrained, **(index or {}))
    folders = run_folders(settings)
    report = IndexReport()
    with open_store(settings.store) as vector_store:
        stored = vector_store.model()
        model_settings = model_for_collection(
            settings.model, stored and stored.name, stored and stored.pretrained
        )
        embedder = shared_embedder(model_settings)
        vector_store.bind_model(embedder.identity)
        records, report.problems = discover_task(source, settings.index)
        skip_report = SkipReport(folders.state_dir) if folders.state_dir else None
        prune = settings.index.prune
        plan = plan_task(
            records, vector_store, source_scope(source), skip_report, report.problems, prune
        )
        refuse_emptying(plan, source, prune=prune)
        report.unchanged = len(plan.unchanged) + len(plan.kept)
        total = len(plan.jobs)
        logger.info(
            "%d images: %d to embed, %d unchanged, %d to remove, %d kept (unreadable), "
            "%d known bad",
            len(records),
            total,
            len(plan.unchanged),
            len(plan.vanished),
            len(plan.kept),
            len(plan.known_bad),
        )
        progress_id = create_progress_artifact(
            progress=0.0, key="index-progress", description=f"Indexing {source}"
        )
        parquet = (
            ParquetShardWriter(folders.parquet_dir, embedder.identity)
            if folders.parquet_dir
            else None
        )
        batches = (
            _dask_batches(plan, model_settings, settings, folders.parquet_dir)
            if runner == "dask"
            else _local_batches(plan, embedder, settings)
        )
        done = 0
        for embedded in batches:
            if not embedded.written:
                write_task(vector_store, embedded.batch, embedded.vectors, parquet)
            report.add_batch(embedded.batch)
            done += len(embedded.batch)
            elapsed = time.perf_counter() - started
            update_progress_artifact(progress_id, 100.0 * done / max(total, 1))
            logger.info("%d/%d images, %.1f images/s", done, total, done / max(elapsed, 1e-9))
            for hook in list(_PROGRESS_HOOKS):
                hook(done, total)
        finish_task(vector_store, report, plan, skip_report)
    update_progress_artifact(progress_id, 100.0)
    if report.skipped_images:
        create_table_artifact(
            key="skipped-images",
            description="Images that could not be indexed",
            table=[{"uri": s.uri, "reason": s.reason} for s in report.skipped_images],
        )
    report.seconds = time.perf_counter() - started
    logger.info(
        "indexed %d, unchanged %d, removed %d, skipped %d in %.1f s",
        report.indexed,
        report.unchanged,
        report.removed,
        report.skipped,
        report.seconds,
    )
    return report.to_dict()


def run_index_flow(
    source: str,
    *,
    runner: Runner = "local",
    dask_address: str | None = None,
    dask_workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """Run :func:`index_images` in this process with the task runner ``runner`` asks for.

    Args:
        source: Folder, list file or image.
        runner: ``local`` or ``dask``.
        dask_address: Scheduler of an existing Dask cluster; None starts a local cluster.
        dask_workers: Worker processes of a local cluster.
        progress: Called as ``progress(done, total)`` after each batch (a terminal bar, say);
            flow parameters must be plain data, so it is handed over beside them.
        **parameters: Further flow parameters (model, store, index, ...).
    """
    if progress is not None:
        _PROGRESS_HOOKS.append(progress)
    try:
        with errors_in_one_line():
            if runner == "dask":
                configured = index_images.with_options(
                    task_runner=dask_task_runner(dask_address, dask_workers)
                )
                with shared_prefect_api():
                    return configured(source, runner="dask", **parameters)
            return index_images(source, runner="local", **parameters)
    finally:
        if progress is not None:
            _PROGRESS_HOOKS.remove(progress)


RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
"""Prefect's loggers that report a failed flow or task run with its traceback."""


class _WithoutTraceback(logging.Filter):
    """Drop the traceback from a log record whose exception is one of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AnyshotError):
            record.exc_info = None
            record.exc_text = None
        return True


@contextmanager
def errors_in_one_line() -> Iterator[None]:
    """While flows run for a command, Prefect logs our errors without a traceback.

    They are expected outcomes (a missing source, a store built by another model), raised
    again from the flow and shown by the command as one line; a traceback is for bugs.
    """
    quiet = _WithoutTraceback()
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def dask_task_runner(address: str | None = None, workers: int = 2) -> TaskRunner[Any]:
    """A Dask task runner: on the cluster at ``address``, else on a local cluster.

    Each worker process is single-threaded for tasks and loads the model once.
    """
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True}
    )


@flow(name="index-images-dask", persist_result=False)
def index_images_dask(
    source: str,
    model: str | None = None,
    pretrained: str | None = None,
    store: str | None = None,
    index: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Deployment entry point: :func:`index_images` as a subflow with its batches on Dask.

    The cluster is ``ANYSHOT_INDEX__DASK_ADDRESS`` (a local one when unset).
    """
    address = build_settings(**(index or {})).index.dask_address
    on_dask = index_images.with_options(task_runner=dask_task_runner(address))
    return on_dask(
        source, model=model, pretrained=pretrained, store=store, index=index, runner="dask"
    )


@contextmanager
def shared_prefect_api() -> Iterator[None]:
    """Make sure worker processes report to the same Prefect API as this process.

    With no ``PREFECT_API_URL``, Prefect starts a temporary server per process: each Dask
    worker would start its own (15 s each) and its task runs would be invisible to ours. One
    temporary server, announced through the environment that workers inherit, serves all.
    """
    if os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        APILogWorker.drain_all(timeout=5)  # queued logs would go to a server that is gone
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


__all__ = ["index_images", "index_images_dask", "run_index_flow"]
