"""The indexing flow: keep a collection in step with a source of images, under Prefect.

The flow orchestrates; each task wraps one :mod:`indexer.indexing` step. It takes the whole
:class:`~indexer.config.Settings`: passed as an object in this process (secrets included, and
on to the Dask workers, which receive it pickled), or as JSON parameters of a deployment,
merged over the ``ANYSHOT_*`` variables of the process that runs it. Two ways to run the
batches (the runner vocabulary of :data:`indexer.config.RUNNERS`):

- ``runner="prefect"``: images are decoded in worker processes ahead of the model
  (:func:`indexer.prepare.prepare_batches`) and embedded in the flow's process;
- ``runner="dask"``: each batch is decoded and embedded by a task on a Dask cluster (the one
  at ``index.dask_address``, or a local one). With a Qdrant server as the store the workers
  write their batches themselves; with the embedded store, which allows one writer, the
  vectors come back and the flow's process writes them.

Videos are units of work of their own, after the images. With ``runner="prefect"``: one
``index-video`` task each, in the flow's process (FFmpeg decodes with its own threads). With
``runner="dask"``: each video is cut into stretches of ``index.video_part_seconds`` (one when
it is shorter) and every stretch is a ``read-video-part`` task on a worker, all videos' at
once; the flow checks, joins and writes each video's frames (:mod:`indexer.video_indexing`).

A store folder held by ``anyshot serve`` is refused at the start of a run, in one line that
names the server (:class:`~indexer.errors.StoreServedError`): the server indexes it instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    FLOW_RUNNERS,
    IndexSettings,
    Runner,
    Settings,
    model_for_collection,
    resolve_runner,
)
from indexer.discover import DiscoveryProblem
from indexer.embed import shared_image_model
from indexer.errors import (
    AnyshotError,
    ConfigError,
    ModelMismatchError,
    StoreServedError,
    VideoDecodeError,
)
from indexer.indexing import (
    IndexPlan,
    IndexReport,
    SourceScope,
    discover_source,
    embed_batch,
    finish_index,
    pixel_pipeline,
    plan_index,
    read_texts,
    refresh_metadata,
    refuse_emptying,
    source_scope,
    write_batch,
)
from indexer.parquet_store import ParquetShardWriter
from indexer.precision_record import record_precision
from indexer.prepare import (
    ImageJob,
    PreparedBatch,
    prepare_batches,
    skipped_image,
    split_batches,
)
from indexer.progress import ProgressCallback
from indexer.run_folders import run_folders
from indexer.schema import ImageRecord, ModelIdentity
from indexer.skip_report import SkipReport
from indexer.stores.interface import VectorStore
from indexer.stores.location import StoreLocation
from indexer.stores.opening import open_store
from indexer.video import FrameChoice, time_ranges, video_duration
from indexer.video_indexing import (
    VideoCounts,
    VideoJob,
    VideoPart,
    content_to_read,
    index_videos,
    join_parts,
    read_video_part,
    store_video,
    video_file,
)

if TYPE_CHECKING:
    from indexer.indexing import ImageModel

_PROGRESS_HOOKS: list[ProgressCallback] = []
"""Progress callbacks of flows run in this process by :func:`run_index_flow`."""
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 2}
"""Retries for tasks whose failures can be passing I/O trouble (a store briefly unreachable)."""


@dataclass
class EmbeddedBatch:
    """A batch back from a worker: the prepared images (pixels dropped) and their vectors.

    Attributes:
        identity: The model the worker embedded with; the flow refuses vectors of any model
            but the collection's.
        written: True when the worker wrote the batch to the store itself.
    """

    batch: PreparedBatch
    vectors: np.ndarray
    identity: ModelIdentity | None = None
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
def embed_task(embedder: ImageModel, batch: PreparedBatch) -> np.ndarray:
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
    jobs: list[ImageJob], settings: Settings, write: bool, parquet_dir: str | None
) -> EmbeddedBatch:
    """Decode and embed one batch on a worker; write it too when ``write`` is set.

    Args:
        jobs: The images of the batch.
        settings: The run's settings, whole (the model to use, decoding limits, the store and
            its credentials, the disk reserve).
        write: Write the batch to ``settings.store`` from the worker (a Qdrant server).
        parquet_dir: Where the worker writes the batch's Parquet shard, if it writes.
    """
    embedder = shared_image_model(settings.model)
    batch = pixel_pipeline(embedder, settings.index).prepare(jobs)
    vectors = embed_batch(embedder, batch)
    if write:
        parquet = (
            ParquetShardWriter(
                parquet_dir, embedder.identity, reserve_free_mb=settings.store.reserve_free_mb
            )
            if parquet_dir
            else None
        )
        with open_store(settings.store) as worker_store:
            write_batch(worker_store, batch, vectors, parquet)
    return EmbeddedBatch(
        replace(batch, pixels=batch.pixels[:0]), vectors, embedder.identity, written=write
    )


@task(name="index-video", cache_policy=NO_CACHE)
def video_task(
    job: VideoJob,
    embedder: ImageModel,
    store: VectorStore,
    settings: IndexSettings,
    parquet: ParquetShardWriter | None,
) -> VideoCounts:
    """Read, embed and store the frames of one video (a video is one unit of work)."""
    return index_videos(
        [job],
        embedder=embedder,
        store=store,
        pipeline=pixel_pipeline(embedder, settings),
        choice=FrameChoice.from_settings(settings),
        batch_size=settings.batch_size,
        parquet=parquet,
        access=AccessPolicy.for_index(settings),
    )


@task(name="read-video-part", cache_policy=NO_CACHE)
def video_part_task(
    path: str, start: float, end: float | None, settings: Settings
) -> VideoPart | str:
    """Read and embed one stretch of a video on a worker; a string says why it gave nothing."""
    embedder = shared_image_model(settings.model)
    try:
        return read_video_part(
            path,
            embedder=embedder,
            pipeline=pixel_pipeline(embedder, settings.index),
            choice=FrameChoice.from_settings(settings.index),
            batch_size=settings.index.batch_size,
            start=start,
            end=end,
        )
    except VideoDecodeError as exc:
        return exc.reason


def _dask_videos(
    jobs: list[VideoJob],
    settings: Settings,
    store: VectorStore,
    parquet: ParquetShardWriter | None,
    identity: ModelIdentity,
) -> VideoCounts:
    """Read every video's stretches on the workers, then join and write each video here."""
    counts = VideoCounts()
    choice = FrameChoice.from_settings(settings.index)
    access = AccessPolicy.for_index(settings.index)
    submitted = []
    for job in jobs:
        try:
            path = video_file(job.record, access)
            content = content_to_read(job, path, store, counts)
            if content is None:
                continue
            ranges = time_ranges(video_duration(path, choice), settings.index.video_part_seconds)
        except VideoDecodeError as exc:
            counts.skipped.append(skipped_image(job.record, exc.reason))
            get_run_logger().warning("skipped %s: %s", job.record.uri, exc.reason)
            continue
        parts = [video_part_task.submit(path, start, end, settings) for start, end in ranges]
        submitted.append((job, path, content, parts))
    for job, path, content, parts in submitted:
        results = [part.result() for part in parts]
        for result in results:
            worker = result.identity if isinstance(result, VideoPart) else None
            if worker is not None and not worker.is_compatible(identity):
                raise ModelMismatchError(identity.label, worker.label)
        try:
            video = join_parts(job.record.uri, results, choice)
        except VideoDecodeError as exc:
            counts.skipped.append(skipped_image(job.record, exc.reason))
            get_run_logger().warning("skipped %s: %s", job.record.uri, exc.reason)
            continue
        store_video(job, path, content, video, store, parquet, counts)
    return counts


@task(name="finish", cache_policy=NO_CACHE, **IO_RETRIES)
def finish_task(
    store: VectorStore, report: IndexReport, plan: IndexPlan, skip_report: SkipReport | None
) -> None:
    """Remove vanished images, record skipped files and the run's roots, optimise the index."""
    finish_index(store, report, plan, skip_report)


def _local_batches(
    plan: IndexPlan, embedder: ImageModel, settings: Settings
) -> Iterator[EmbeddedBatch]:
    embedder.image_batch_size(min(len(plan.jobs), settings.index.batch_size))  # before workers
    pipeline = pixel_pipeline(embedder, settings.index)
    for batch in prepare_batches(
        plan.jobs, pipeline, batch_size=settings.index.batch_size, workers=settings.index.workers
    ):
        yield EmbeddedBatch(batch, embed_task(embedder, batch))


def _dask_batches(
    plan: IndexPlan, settings: Settings, parquet_dir: Path | None, window: int = 8
) -> Iterator[EmbeddedBatch]:
    # Workers can reach a Qdrant server themselves; an embedded store has one writer: us.
    direct = StoreLocation.parse(settings.store.location).is_server
    worker_parquet = str(parquet_dir) if direct and parquet_dir else None
    pending: deque[Any] = deque()
    for chunk in split_batches(plan.jobs, settings.index.batch_size):
        pending.append(prepare_embed_task.submit(chunk, settings, direct, worker_parquet))
        if len(pending) >= window:  # bounded: results wait in memory until written
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _open_run_store(source: str, settings: Settings) -> VectorStore:
    """Open the run's store and hold it (the run writes); a folder that ``anyshot serve``
    holds is refused in one line, before any model loads or any file is read."""
    try:
        return open_store(settings.store, hold=True)
    except StoreServedError as exc:
        raise StoreServedError(exc.location, exc.url, source=source) from None


@flow(name="index-images", persist_result=False, log_prints=False)
def index_images(
    source: str, settings: Settings | None = None, runner: str = "prefect"
) -> dict[str, Any]:
    """Index the images of ``source`` (folder, list file or one image) into the store.

    Args:
        source: Folder, list file (.txt, .parquet) or image.
        settings: All settings, whole. In this process: the object (secrets included). In a
            deployment: JSON (``{"store": {"location": ...}, "index": {"batch_size": 128}}``),
            merged over the ``ANYSHOT_*`` variables of the process that runs the flow (keep
            secrets there, not in parameters). None: the variables alone.
        runner: ``prefect`` or ``dask`` (the task runner must match: see
            :func:`run_index_flow`).

    Returns:
        The summary of ``anyshot index --json``.

    Raises:
        StoreServedError: The store folder is held by ``anyshot serve`` (index through it).
    """
    # `runner` is a plain str: flow parameters are validated from the annotations.
    if runner not in FLOW_RUNNERS:
        raise ConfigError(f"the index flow runs with runner {' or '.join(FLOW_RUNNERS)}")
    keep_our_errors_in_one_line()
    settings = settings if settings is not None else Settings()
    started = time.perf_counter()
    folders = run_folders(settings)
    report = IndexReport()
    with _open_run_store(source, settings) as vector_store:
        stored = vector_store.model()
        run_settings = settings.model_copy(
            update={
                "model": model_for_collection(
                    settings.model, stored and stored.name, stored and stored.pretrained
                )
            }
        )
        embedder = shared_image_model(run_settings.model)
        vector_store.bind_model(embedder.identity)
        records, report.problems = discover_task(source, settings.index)
        skip_report = SkipReport(folders.state_dir) if folders.state_dir else None
        prune = settings.index.prune
        plan = plan_task(
            records, vector_store, source_scope(source), skip_report, report.problems, prune
        )
        refuse_emptying(plan, source, prune=prune)
        report.unchanged = len(plan.unchanged) + len(plan.kept)
        _log_plan(records, plan)
        if plan.jobs or plan.videos:
            record_precision(vector_store, embedder.image_precision)
        batches = (
            _dask_batches(plan, run_settings, folders.parquet_dir)
            if runner == "dask"
            else _local_batches(plan, embedder, run_settings)
        )
        parquet = (
            ParquetShardWriter(
                folders.parquet_dir,
                embedder.identity,
                reserve_free_mb=settings.store.reserve_free_mb,
            )
            if folders.parquet_dir
            else None
        )
        _write_batches(source, batches, vector_store, embedder.identity, parquet, report, plan)
        if runner == "dask":
            report.add_videos(
                _dask_videos(plan.videos, run_settings, vector_store, parquet, embedder.identity)
            )
        else:
            for job in plan.videos:
                report.add_videos(video_task(job, embedder, vector_store, settings.index, parquet))
        if plan.stale_metadata:  # images stored before metadata was read: no re-embedding
            refresh_metadata(
                vector_store,
                plan.stale_metadata,
                access=AccessPolicy.for_index(settings.index),
            )
        if settings.index.ocr:
            report.ocr = read_texts(
                vector_store, plan, settings.index, access=AccessPolicy.for_index(settings.index)
            )
        finish_task(vector_store, report, plan, skip_report)
    report.seconds = time.perf_counter() - started
    _report_run(report)
    return report.to_dict()


def _log_plan(records: list[ImageRecord], plan: IndexPlan) -> None:
    get_run_logger().info(
        "%d files: %d images to embed, %d videos to read, %d unchanged, %d to remove, "
        "%d kept (unreadable), %d known bad",
        len(records),
        len(plan.jobs),
        len(plan.videos),
        len(plan.unchanged),
        len(plan.vanished),
        len(plan.kept),
        len(plan.known_bad),
    )


def _write_batches(
    source: str,
    batches: Iterator[EmbeddedBatch],
    store: VectorStore,
    identity: ModelIdentity,
    parquet: ParquetShardWriter | None,
    report: IndexReport,
    plan: IndexPlan,
) -> None:
    """Write the batches that the workers did not write; report progress after each."""
    logger = get_run_logger()
    started = time.perf_counter()
    total = len(plan.jobs)
    progress_id = create_progress_artifact(
        progress=0.0, key="index-progress", description=f"Indexing {source}"
    )
    done = 0
    for embedded in batches:
        if embedded.identity is not None and not embedded.identity.is_compatible(identity):
            raise ModelMismatchError(identity.label, embedded.identity.label)
        if not embedded.written:
            write_task(store, embedded.batch, embedded.vectors, parquet)
        report.add_batch(embedded.batch)
        done += len(embedded.batch)
        elapsed = time.perf_counter() - started
        update_progress_artifact(progress_id, 100.0 * done / max(total, 1))
        logger.info("%d/%d images, %.1f images/s", done, total, done / max(elapsed, 1e-9))
        for hook in list(_PROGRESS_HOOKS):
            hook(done, total)
    update_progress_artifact(progress_id, 100.0)


def _report_run(report: IndexReport) -> None:
    if report.skipped_images:
        create_table_artifact(
            key="skipped-images",
            description="Images that could not be indexed",
            table=[{"uri": s.uri, "reason": s.reason} for s in report.skipped_images],
        )
    get_run_logger().info(
        "indexed %d, unchanged %d, removed %d, skipped %d in %.1f s",
        report.indexed,
        report.unchanged,
        report.removed,
        report.skipped,
        report.seconds,
    )


def run_index_flow(
    source: str,
    settings: Settings,
    *,
    runner: Runner = "prefect",
    dask_address: str | None = None,
    dask_workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run :func:`index_images` in this process with the task runner ``runner`` asks for.

    Args:
        source: Folder, list file or image.
        settings: All settings; they reach the flow and its workers whole.
        runner: ``prefect``, ``dask``, or ``auto`` (see :func:`indexer.config.resolve_runner`;
            ``inline`` is not a flow).
        dask_address: Scheduler of an existing Dask cluster; None: ``index.dask_address``,
            else a local cluster.
        dask_workers: Worker processes of a local cluster; None: ``index.dask_workers``.
        progress: Called as ``progress(done, total)`` after each batch (a terminal bar, say);
            flow parameters must be plain data, so it is handed over beside them.

    Raises:
        ConfigError: Runner ``inline`` (or ``auto`` without ``PREFECT_API_URL``).
    """
    resolved = resolve_runner(runner)
    if resolved not in FLOW_RUNNERS:
        raise ConfigError(f"runner {runner!r} runs no flow: use {' or '.join(FLOW_RUNNERS)}")
    keep_our_errors_in_one_line()
    if progress is not None:
        _PROGRESS_HOOKS.append(progress)
    try:
        if resolved == "dask":
            address = dask_address or settings.index.dask_address
            configured = index_images.with_options(
                task_runner=dask_task_runner(address, dask_workers or settings.index.dask_workers)
            )
            with shared_prefect_api():
                return configured(source, settings=settings, runner="dask")
        return index_images(source, settings=settings, runner="prefect")
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


def keep_our_errors_in_one_line() -> None:
    """From now on in this process, Prefect logs anyshot's errors without a traceback.

    They are expected outcomes (a missing source, a store held by a server, a store built by
    another model), said in one line; a traceback is for bugs. Each flow calls this at its
    start, so that it holds in a deployment's process too (idempotent).
    """
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _WithoutTraceback) for f in logger.filters):
            logger.addFilter(_WithoutTraceback())


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
def index_images_dask(source: str, settings: Settings | None = None) -> dict[str, Any]:
    """Deployment entry point: :func:`index_images` as a subflow with its batches on Dask.

    The cluster is ``index.dask_address`` (``ANYSHOT_INDEX__DASK_ADDRESS``), a local one when
    unset. ``settings`` as for :func:`index_images`.
    """
    keep_our_errors_in_one_line()
    settings = settings if settings is not None else Settings()
    on_dask = index_images.with_options(
        task_runner=dask_task_runner(settings.index.dask_address, settings.index.dask_workers)
    )
    return on_dask(source, settings=settings, runner="dask")


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
