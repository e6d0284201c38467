"""``anyshot index`` and ``anyshot schedule``: keep a collection in step with a source."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

import click

from indexer.config import RUNNERS, Runner, Settings, build_settings
from indexer.errors import ConfigError, StoreServedError
from indexer.stores.location import StoreLocation
from search.cli.common import (
    F,
    FiniteFloatRange,
    echo_json,
    is_remote,
    json_option,
    open_collection,
    progress_bar,
    store_options,
    warn,
)

if TYPE_CHECKING:
    from indexer.indexing import IndexReport
    from search.face import CollectionClient


def index_options(fn: F) -> F:
    """Options that shape an index run (index and schedule)."""
    fn = click.option(
        "--ocr/--no-ocr",
        default=None,
        help="Read the text inside images (OCR) for searches by --ocr; also reads stored "
        "images that lack it, without re-embedding (default: $ANYSHOT_INDEX__OCR, off).",
    )(fn)
    fn = click.option(
        "--prune",
        is_flag=True,
        default=None,
        help="Also remove the images under folders that could not be read, and all images of "
        "a source folder that is now empty (default: keep them; only files that are gone "
        "are removed).",
    )(fn)
    fn = click.option(
        "--workers",
        type=click.IntRange(0, 256),
        help="Decoding processes (0: decode in the main process). Default: one per spare core.",
    )(fn)
    fn = click.option(
        "--include-hidden", is_flag=True, default=None, help="Index hidden files and folders too."
    )(fn)
    fn = click.option(
        "--batch-size",
        type=click.IntRange(1, 65536),
        help="Images per batch (decoded, embedded and stored together).",
    )(fn)
    return fn


@click.command()
@click.argument("source")
@store_options
@index_options
@click.option(
    "--runner",
    type=click.Choice(RUNNERS),
    default="auto",
    show_default=True,
    help="inline: this process; prefect: the Prefect flow; dask: the flow's batches "
    "on a Dask cluster; auto: prefect if PREFECT_API_URL is set, else inline.",
)
@click.option(
    "--dask-address",
    metavar="HOST:PORT",
    help="Scheduler of an existing Dask cluster (--runner dask). "
    "Default: $ANYSHOT_INDEX__DASK_ADDRESS, else a local cluster.",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(1, 256),
    help="Worker processes of the local Dask cluster. Default: $ANYSHOT_INDEX__DASK_WORKERS, 2.",
)
@json_option("Print the summary as one JSON object (last line of stdout).")
def index(
    source: str,
    store: str | None,
    model: str | None,
    pretrained: str | None,
    batch_size: int | None,
    include_hidden: bool | None,
    workers: int | None,
    prune: bool | None,
    ocr: bool | None,
    runner: str,
    dask_address: str | None,
    dask_workers: int | None,
    as_json: bool,
) -> None:
    """Index the images and videos of SOURCE: a folder, a list file (.txt or .parquet) or one
    image or video. A video is indexed as moments: one point per kept frame (see README,
    "Videos").

    Re-running embeds only new and changed images and removes the ones whose files are gone;
    images under folders that cannot be read now are kept (--prune removes them). A run that
    was killed resumes where it stopped. While `anyshot serve` holds the store folder, the run
    goes to the server (which keeps answering searches); the server's settings apply.

    With --json the last line of stdout is one JSON object: indexed, unchanged, removed,
    skipped, seconds, problems (every file or folder not indexed, with its reason), videos and
    frames (videos read by this run and their frames stored), partial_videos.

    \b
    Examples:
      anyshot index ~/Pictures --model anyshot-tiny --store ./index
      anyshot index urls.txt --store http://localhost:6333 --json
      anyshot index ~/Pictures --store ./index --ocr
      anyshot index /data/photos --runner dask --dask-address tcp://scheduler:8786
    """
    settings = build_settings(
        store=store,
        model=model,
        pretrained=pretrained,
        batch_size=batch_size,
        include_hidden=include_hidden,
        workers=workers,
        prune=prune,
        ocr=ocr,
        dask_address=dask_address,
        dask_workers=dask_workers,
    )
    with open_collection(settings) as client:
        if reads_here(client, settings):
            check_source(source, settings)
        if is_remote(client):
            click.echo(
                f"{settings.store.location} is open in anyshot serve ({client.location}): "
                "the server runs the index",
                err=True,
            )
        with progress_bar() as progress:
            report = client.index(source, runner=cast(Runner, runner), progress=progress)
    if not (report.indexed or report.unchanged or report.skipped or report.removed):
        warn(f"no images in {source}: nothing was indexed")
    print_index_report(report, as_json=as_json)


def reads_here(client: CollectionClient, settings: Settings) -> bool:
    """True when the run reads its source on this machine: in this process, or in an
    ``anyshot serve`` found through its store folder here. Through a server's URL the source
    is a path on the server's machine, which only the server can check."""
    return not is_remote(client) or StoreLocation.parse(settings.store.location).is_folder


def check_source(source: str, settings: Settings) -> None:
    """Refuse a source that does not exist or cannot be read, before any model loads.

    The checks are discovery's own (same messages); nothing is walked yet.

    Raises:
        SourceError: The source is missing, unreadable, or not a folder, image or list.
    """
    if "://" in source:
        return  # one image by URL: the run fetches it
    from indexer.discover import discover

    found = discover(source, include_hidden=settings.index.include_hidden)
    close = getattr(found, "close", None)
    if close is not None:
        close()  # a list file's handle, opened by the check


def print_index_report(report: IndexReport, *, as_json: bool) -> None:
    """The run's summary: one JSON object, or one line for a person."""
    if as_json:
        echo_json(report.to_dict())
        return
    videos = f" ({report.videos} videos, {report.frames} frames)" if report.videos else ""
    click.echo(
        f"indexed {report.indexed}{videos}, unchanged {report.unchanged}, removed "
        f"{report.removed}, skipped {report.skipped} in {report.seconds:.1f} s "
        f"({report.images_per_second:.1f} images/s)"
    )
    for uri, reason in report.partial_videos:
        warn(f"indexed {uri} in part: {reason}")


@click.command()
@click.argument("source")
@store_options
@index_options
@click.option("--cron", metavar="EXPR", help='Cron schedule, e.g. "0 * * * *" (hourly).')
@click.option(
    "--interval",
    type=FiniteFloatRange(min=1),
    metavar="SECONDS",
    help="Run every SECONDS instead of a cron schedule.",
)
@click.option("--name", help="Deployment name (default: index-<folder>).")
def schedule(
    source: str,
    store: str | None,
    model: str | None,
    pretrained: str | None,
    batch_size: int | None,
    include_hidden: bool | None,
    workers: int | None,
    prune: bool | None,
    ocr: bool | None,
    cron: str | None,
    interval: float | None,
    name: str | None,
) -> None:
    """Keep SOURCE indexed on a schedule: serve the index flow until stopped (Ctrl-C).

    Needs a Prefect server (prefect server start) and PREFECT_API_URL pointing at it.
    Runs appear in the Prefect UI with their progress and skipped files. While `anyshot serve`
    holds the store folder, each run is refused at its start in one line (index through the
    server instead); the command says so when it starts.

    \b
    Examples:
      anyshot schedule ~/Pictures --cron "0 * * * *" --store ./index
      anyshot schedule /data/photos --interval 600 --store http://qdrant:6333
    """
    if (cron is None) == (interval is None):
        raise ConfigError("give exactly one schedule: --cron EXPR or --interval SECONDS")
    settings = build_settings(
        store=store,
        model=model,
        pretrained=pretrained,
        batch_size=batch_size,
        include_hidden=include_hidden,
        workers=workers,
        prune=prune,
        ocr=ocr,
    )
    source = os.path.abspath(source) if os.path.exists(source) else source
    held = served_by(settings, source)
    if held is not None:  # each run refuses at its start, in one line: say so now, once
        warn(f"{held}; the scheduled runs are refused while the server holds the store")
    from search.client import quiet_prefect_telemetry

    quiet_prefect_telemetry()  # before prefect is imported
    from pipelines.schedule import serve_index_schedule

    serve_index_schedule(source, settings, cron=cron, interval=interval, name=name)


def served_by(settings: Settings, source: str) -> StoreServedError | None:
    """The refusal each scheduled run would meet, when ``anyshot serve`` holds the store."""
    try:
        with open_collection(settings) as client:
            if not is_remote(client):
                return None
            url = client.location
    except StoreServedError as held:  # held by a server that does not answer
        url = held.url
    return StoreServedError(settings.store.location, url, source=source)
