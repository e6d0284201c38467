"""The ``anyshot`` command line: a thin shell over :class:`search.client.ImageSearch`."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from indexer.config import RUNNERS, Runner, Settings, build_settings
from indexer.errors import AnyshotError, ConfigError, StoreLockedError

if TYPE_CHECKING:
    from search.client import ImageSearch
    from search.demo import DemoResult
    from search.engine import Hit
    from search.remote import RemoteServer

F = TypeVar("F", bound=Callable[..., Any])


def store_options(fn: F) -> F:
    """Options every command that opens a collection takes."""
    fn = click.option(
        "--pretrained",
        metavar="TAG|FILE",
        help="Pretrained tag (laion2b_s34b_b79k) or checkpoint file.",
    )(fn)
    fn = click.option(
        "--model",
        "model",
        metavar="NAME",
        help="open_clip model (ViT-B-32), anyshot-tiny, or local-dir:FOLDER. "
        "Default: the collection's model.",
    )(fn)
    fn = click.option(
        "--store",
        metavar="LOCATION",
        help="A folder (embedded), :memory: or http(s)://qdrant:6333. "
        "Default: $ANYSHOT_STORE__LOCATION or ~/.local/share/anyshot/store.",
    )(fn)
    return fn


def open_client(settings: Settings) -> ImageSearch:
    """Open the Python client (imported here so that ``--help`` stays fast)."""
    from search.client import ImageSearch

    return ImageSearch(settings)


@contextmanager
def progress_bar(*, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A terminal progress bar (images/s, ETA) on stderr; yields a ``(done, total)`` callback.

    The bar stays off when stderr is not a terminal.
    """
    from tqdm import tqdm

    bar = tqdm(
        total=0,
        unit="img",
        desc="indexing",
        disable=None if enabled else True,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()


class FiniteFloatRange(click.FloatRange):
    """A float in a range that is a real number: ``nan`` and ``inf`` are refused (click's
    FloatRange lets ``nan`` through, since every comparison with it is false)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def verbose_run() -> bool:
    """True when the command line asked for more output (``-v``)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("verbose"))


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn anyshot errors into one red line on stderr and exit code 1.

    Anything else is a bug, and still one line (``error: internal error: ...``, exit 1); the
    traceback follows only with ``-v``. So no command ever answers a user with a traceback.
    """
    try:
        yield
    except AnyshotError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.secho("interrupted", fg="red", err=True)
        sys.exit(130)
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise  # usage errors and exits: click prints and exits as it should
    except BrokenPipeError:
        # `anyshot search ... | head`: the reader went away; nothing more to say.
        sys.stderr.close()
        sys.exit(1)
    except Exception as exc:
        if verbose_run():
            traceback.print_exc(file=sys.stderr)
        click.secho(
            f"error: internal error: {type(exc).__name__}: {exc} (run with -v for details)",
            fg="red",
            err=True,
        )
        sys.exit(1)


class AnyshotGroup(click.Group):
    """The command group; every command runs inside :func:`user_errors`, printing included."""

    def invoke(self, ctx: click.Context) -> Any:
        with user_errors():
            return super().invoke(ctx)


@click.group(cls=AnyshotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="anyshot")
def main(verbose: int) -> None:
    """anyshot: search images by example, by name and by description.

    \b
    Examples:
      anyshot index ~/Pictures
      anyshot search "a dog on a beach"
      anyshot search --image ~/Pictures/dog.jpg -k 5 --json
      anyshot serve                  # HTTP API and search page on http://127.0.0.1:8000/
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def index_options(fn: F) -> F:
    """Options that shape an index run (index and schedule)."""
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


@main.command()
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
    help="Scheduler of an existing Dask cluster (--runner dask); default: a local cluster.",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(1, 256),
    default=2,
    show_default=True,
    help="Worker processes of the local Dask cluster.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as one JSON object (last line of stdout).",
)
def index(
    source: str,
    store: str | None,
    model: str | None,
    pretrained: str | None,
    batch_size: int | None,
    include_hidden: bool | None,
    workers: int | None,
    prune: bool | None,
    runner: str,
    dask_address: str | None,
    dask_workers: int,
    as_json: bool,
) -> None:
    """Index the images of SOURCE: a folder, a list file (.txt or .parquet) or one image.

    Re-running embeds only new and changed images and removes the ones whose files are gone;
    images under folders that cannot be read now are kept (--prune removes them). A run that
    was killed resumes where it stopped. While `anyshot serve` holds the store folder, the run
    goes to the server (which keeps answering searches); the server's settings apply.

    With --json the last line of stdout is one JSON object: indexed, unchanged, removed,
    skipped, seconds, and problems (every file or folder not indexed, with its reason).

    \b
    Examples:
      anyshot index ~/Pictures --model anyshot-tiny --store ./index
      anyshot index urls.txt --store http://localhost:6333 --json
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
    )
    with user_errors():
        try:
            client = open_client(settings)
        except StoreLockedError:
            server = running_server(settings)
            if server is None:
                raise
            from indexer.indexing import IndexReport

            click.echo(
                f"{settings.store.location} is open in anyshot serve ({server.url}): "
                "the server runs the index",
                err=True,
            )
            with server, progress_bar() as progress:
                summary = server.index(absolute_source(source), progress=progress)
            report = IndexReport.from_dict(summary)
        else:
            with client, progress_bar() as progress:
                report = client.index(
                    source,
                    runner=cast(Runner, runner),
                    dask_address=dask_address,
                    dask_workers=dask_workers,
                    progress=progress,
                )
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    click.echo(
        f"indexed {report.indexed}, unchanged {report.unchanged}, removed "
        f"{report.removed}, skipped {report.skipped} in {report.seconds:.1f} s "
        f"({report.images_per_second:.1f} images/s)"
    )


def absolute_source(source: str) -> str:
    """A source as the server must see it: an absolute path (URLs and lists stay as given).

    Raises:
        ConfigError: A path that is not UTF-8 (a request cannot carry it).
    """
    path = os.path.abspath(source) if os.path.exists(source) else source
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{source}: a path that is not UTF-8 cannot be sent to the server; index it with "
            "the server stopped, or index a folder above it"
        ) from exc
    return path


def running_server(settings: Settings) -> RemoteServer | None:
    """The anyshot server that holds this (folder) store open, if it answers."""
    from indexer.stores.holder import find_server
    from indexer.stores.location import StoreLocation
    from search.remote import RemoteServer

    folder = StoreLocation.parse(settings.store.location).folder
    if folder is None:
        return None
    found = find_server(folder)
    if found is None:
        return None
    key = settings.api.api_key.get_secret_value() if settings.api.api_key else None
    server = RemoteServer(found.url, api_key=key)
    if server.healthy():
        return server
    server.close()  # a file left by a server that died: the lock error stands
    return None


@main.command()
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
    cron: str | None,
    interval: float | None,
    name: str | None,
) -> None:
    """Keep SOURCE indexed on a schedule: serve the index flow until stopped (Ctrl-C).

    Needs a Prefect server (prefect server start) and PREFECT_API_URL pointing at it.
    Runs appear in the Prefect UI with their progress and skipped files.

    \b
    Examples:
      anyshot schedule ~/Pictures --cron "0 * * * *" --store ./index
      anyshot schedule /data/photos --interval 600 --store http://qdrant:6333
    """
    from search.client import quiet_prefect_telemetry

    quiet_prefect_telemetry()
    from pipelines.schedule import serve_index_schedule

    settings = build_settings(
        store=store,
        model=model,
        pretrained=pretrained,
        batch_size=batch_size,
        include_hidden=include_hidden,
        workers=workers,
        prune=prune,
    )
    with user_errors():
        serve_index_schedule(
            os.path.abspath(source) if os.path.exists(source) else source,
            settings,
            cron=cron,
            interval=interval,
            name=name,
        )


@main.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--store", metavar="LOCATION", help="The store to export.")
@click.option("--json", "as_json", is_flag=True, help="Print the count as JSON.")
def export_command(folder: str, store: str | None, as_json: bool) -> None:
    """Write the collection (vectors and payloads) as Parquet shards into FOLDER.

    \b
    Example (embedded store to a Qdrant server, without re-embedding):
      anyshot export ./snapshot --store ./index
      anyshot load ./snapshot --store http://qdrant:6333
    """
    from indexer.transfer import export_collection

    settings = build_settings(store=store)
    with user_errors(), open_client(settings) as client:
        count = export_collection(client.store, folder)
    click.echo(
        json.dumps({"exported": count, "folder": folder})
        if as_json
        else f"exported {count} images to {folder}"
    )


@main.command("load")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--store", metavar="LOCATION", help="The store to load into.")
@click.option(
    "--trust",
    "trust",
    multiple=True,
    metavar="FOLDER|ORIGIN",
    help="Let the HTTP API serve the loaded images from this folder or http(s) origin "
    "(repeatable). Without it, images of a snapshot are searchable but served only from "
    "folders this store was indexed from.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def load_command(folder: str, store: str | None, trust: tuple[str, ...], as_json: bool) -> None:
    """Load Parquet shards from FOLDER (anyshot export, or a store's parquet/) into a store.

    Every shard is checked (checksums, schema, model) and every row (uri, id, vector,
    payload); bad shards and rows are reported and skipped, the good ones loaded. Exit status
    1 when anything was rejected.

    \b
    Examples:
      anyshot load ./snapshot --store http://qdrant:6333
      anyshot load ./index/parquet --store ./rebuilt-index
      anyshot load ./snapshot --store ./index --trust /data/photos --json
    """
    from indexer.stores.location import MEMORY_LOCATION, StoreLocation
    from indexer.transfer import load_collection

    settings = build_settings(store=store)
    if StoreLocation.parse(settings.store.location).is_memory:
        click.secho(
            f"warning: --store {MEMORY_LOCATION} keeps nothing: the loaded images are gone "
            "when this command ends",
            fg="yellow",
            err=True,
        )
    with user_errors(), open_client(settings) as client:
        report = load_collection(folder, client.store, trust=trust)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        for bad in report.bad_shards:
            click.echo(f"bad shard {bad['path']}: {bad['reason']}")
        for row in report.rejected_rows:
            shown = f"row {row['row']} of {row['shard']} ({row['uri']})"
            click.echo(f"rejected {shown}: {row['reason']}")
        if report.rejected > len(report.rejected_rows):
            click.echo(f"... and {report.rejected - len(report.rejected_rows)} more rejected rows")
        for refused in report.rejected_documents:
            what = f"concept {refused['name']!r}" if refused["name"] else refused["document"]
            click.echo(f"rejected {what}: {refused['reason']}")
        concepts = f" and {len(report.concepts)} concepts" if report.concepts else ""
        click.echo(
            f"loaded {report.loaded} rows{concepts}; rejected {report.rejected} rows and "
            f"{len(report.bad_shards)} of {report.shards} shards; "
            f"the store holds {report.points} images"
        )
    if not report.complete:
        documents = len(report.rejected_documents)
        kinds = "rejected_rows and bad_shards"
        if documents:
            kinds = "rejected_rows, bad_shards and rejected_documents"
        where = f"{kinds} in the JSON above" if as_json else "the lines above"
        also = f" and {documents} concepts or documents" if documents else ""
        click.secho(
            f"error: {report.rejected} rows and {len(report.bad_shards)} shards{also} of "
            f"{folder} were rejected (see {where}); the rest was loaded",
            fg="red",
            err=True,
        )
        sys.exit(1)


@main.command()
@click.argument("text", required=False)
@click.option("--image", metavar="FILE|URL", help="Search by an example image.")
@click.option("--name", metavar="NAME", help="Search by a name (prompt templates).")
@click.option(
    "--id",
    "similar_to",
    type=int,
    metavar="ID",
    help="Search by an indexed image (more like this).",
)
@click.option(
    "--not",
    "negatives",
    multiple=True,
    metavar="TEXT",
    help="Push results away from TEXT (repeatable).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="EXPR",
    help="Payload filter (repeatable, all must hold): folder=/photos/2024, format=JPEG,PNG, "
    "tag=cat, mtime>=2024-01-01, size<2MB, id=5.",
)
@store_options
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 10_000),
    default=10,
    show_default=True,
    help="How many results.",
)
@click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many results.")
@click.option(
    "--threshold",
    type=FiniteFloatRange(-1, 1),
    metavar="SCORE",
    help="Only results with at least this score (cosine, -1..1).",
)
@click.option(
    "--expand/--no-expand",
    default=None,
    help="Visual query expansion: blend the top images into the query and search again "
    "(default: ANYSHOT_SEARCH__EXPAND, off).",
)
@click.option(
    "--collapse-duplicates", is_flag=True, help="Show one image of each near-duplicate group."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, best first.")
def search(
    text: str | None,
    image: str | None,
    name: str | None,
    similar_to: int | None,
    negatives: tuple[str, ...],
    filters: tuple[str, ...],
    store: str | None,
    model: str | None,
    pretrained: str | None,
    k: int,
    offset: int,
    threshold: float | None,
    expand: bool | None,
    collapse_duplicates: bool,
    as_json: bool,
) -> None:
    """Search the collection by TEXT, an example --image, a --name, or an indexed --id.

    Prints a table (rank, score, path), or with --json one object per line (id, uri, score,
    payload), best first. While `anyshot serve` holds the store, the search goes through it.

    \b
    Examples:
      anyshot search "a red circle"
      anyshot search "a beach" --not "people" --filter format=JPEG --threshold 0.2
      anyshot search "a red circle" --expand --collapse-duplicates
      anyshot search --image query.jpg -k 20 --json
      anyshot search --name heart --filter folder=/data/shapes
      anyshot search --id 1234567890
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    options: dict[str, Any] = {"k": k, "offset": offset, "threshold": threshold}
    if expand is not None:
        options["expand"] = expand
    if collapse_duplicates:
        options["collapse_duplicates"] = True
    with user_errors():
        try:
            client = open_client(settings)
        except StoreLockedError:
            server = running_server(settings)
            if server is None:
                raise
            with server:
                hits = search_through_server(
                    server, text, image, name, similar_to, negatives, filters, options
                )
        else:
            with client:
                hits = client.search(
                    text,
                    image=image,
                    name=name,
                    similar_to=similar_to,
                    negatives=negatives,
                    where=list(filters) or None,
                    **options,
                )
    print_hits(hits, as_json=as_json, first_rank=offset + 1)


def search_through_server(
    server: RemoteServer,
    text: str | None,
    image: str | None,
    name: str | None,
    similar_to: int | None,
    negatives: tuple[str, ...],
    filters: tuple[str, ...],
    options: dict[str, Any],
) -> list[Hit]:
    """Search through a running server (which holds the store open)."""
    import base64

    from indexer.decode import read_image_bytes
    from indexer.errors import ImageDecodeError, QueryError
    from search.engine import Hit

    request: dict[str, Any] = {
        "text": text,
        "name": name,
        "id": similar_to,
        "negatives": list(negatives),
        "filters": list(filters),
        **options,
    }
    if image is not None:
        # The server may not read this machine's files (nor fetch URLs): send the bytes.
        try:
            request["image"] = base64.b64encode(read_image_bytes(image)).decode()
        except ImageDecodeError as exc:
            raise QueryError(f"cannot use the example image {exc.path}: {exc.reason}") from exc
    found = server.search({key: v for key, v in request.items() if v not in (None, [])})
    return [Hit(h["id"], h["uri"], h["score"], h.get("payload") or {}) for h in found]


@main.command()
@click.option(
    "--folder",
    type=click.Path(file_okay=False),
    help="Where the demo images and store go  [default: $XDG_DATA_HOME/anyshot/demo, "
    "that is ~/.local/share/anyshot/demo].",
)
@click.option(
    "--images",
    type=click.IntRange(10, 100_000),
    default=2000,
    show_default=True,
    help="How many images to generate.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
def demo(folder: str | None, images: int, as_json: bool) -> None:
    """Try anyshot offline: generate coloured shapes, index them, search by text, image, name.

    Uses anyshot-tiny, a small model shipped with anyshot that knows only this synthetic
    domain (real photos need a pretrained model such as the default ViT-B-32).

    \b
    Examples:
      anyshot demo
      anyshot demo --folder /tmp/shapes --images 500 --json
    """
    from search.demo import default_demo_dir, has_collection, run_demo

    root = Path(folder).absolute() if folder else default_demo_dir()
    if not as_json:
        doing = "Reusing" if has_collection(root / "images", images) else "Generating"
        click.echo(f"{doing} {images} images of coloured shapes in {root / 'images'} ...")
    with user_errors(), progress_bar(enabled=not as_json) as progress:
        result = run_demo(root, images=images, progress=progress)
    if as_json:
        click.echo(json.dumps(demo_outcome(result)))
        return
    print_demo(result)


def demo_outcome(result: DemoResult) -> dict[str, Any]:
    """The demo's outcome as JSON-ready values."""
    return {
        "folder": str(result.images_dir.parent),
        "images": str(result.images_dir),
        "store": str(result.store),
        "generated": result.generated,
        "index": result.report.to_dict(),
        "searches": [
            {
                "kind": s.kind,
                "query": s.query,
                "wanted": s.wanted,
                "precision": s.precision,
                "summary": s.summary,
                "hits": [h.to_dict() for h in s.hits],
            }
            for s in result.searches
        ],
    }


def print_demo(result: DemoResult) -> None:
    """The demo's outcome for a person: each search with marked results, then what to try."""
    report = result.report
    click.echo(
        f"Indexed {report.indexed} images ({report.unchanged} already indexed) into "
        f"{result.store} in {report.seconds:.1f} s.\n"
    )
    click.echo(
        f"{click.style('✓', fg='green')} the image shows what was asked, "
        f"{click.style('✗', fg='red')} it does not (judged from the shapes each image was "
        "drawn with)\n"
    )
    labels = {"text": "By description", "image": "By example image", "name": "By name"}
    for example in result.searches:
        click.secho(f"{labels[example.kind]}: {example.query}", bold=True)
        for rank, (hit, match) in enumerate(
            zip(example.hits, example.matches, strict=True), start=1
        ):
            mark = click.style("✓", fg="green") if match else click.style("✗", fg="red")
            click.echo(f"  {rank}. {hit.score:6.3f} {mark} {hit.uri}")
        click.echo(f"  {example.summary}\n")
    store_option = f"--store {result.store}"
    click.echo(f"The demo's files are in {result.images_dir.parent}. Next, try:")
    click.echo(f'  anyshot search "two small green stars" {store_option}')
    click.echo(f"  anyshot search --image {result.searches[2].query} {store_option} --json")
    click.echo(f"  anyshot search --name hexagon {store_option}")
    click.echo(f"  anyshot info {store_option}")
    click.echo(
        "Real photos need a pretrained model: anyshot index ~/Pictures (downloads "
        "ViT-B-32 on first use)."
    )


def print_hits(hits: list[Hit], *, as_json: bool, first_rank: int = 1) -> None:
    """Print hits as JSON lines or as a table of rank, score and path."""
    if as_json:
        for hit in hits:
            click.echo(json.dumps(hit.to_dict()))
        return
    if not hits:
        click.echo("no results")
        return
    width = len(str(first_rank + len(hits) - 1))
    click.secho(f"{'#':>{width}}  {'score':>6}  path", bold=True)
    for rank, hit in enumerate(hits, start=first_rank):
        click.echo(f"{rank:>{width}}  {hit.score:6.3f}  {hit.uri}")


@main.command()
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(store: str | None, model: str | None, pretrained: str | None, as_json: bool) -> None:
    """Show the collection: name, location, backend, model, number of images, size on disk.

    \b
    Examples:
      anyshot info --store ./index
      anyshot info --json
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with user_errors(), open_client(settings) as client:
        details = client.info()
    data = {
        "collection": settings.store.collection,
        "location": details.location,
        "backend": details.backend,
        "model": details.model.to_dict() if details.model else None,
        "points": details.points,
        "indexed_vectors": details.indexed_vectors,
        "disk_bytes": details.disk_bytes,
        **details.extra,
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    for key, value in data.items():
        if key == "model" and details.model is not None:
            value = f"{details.model.label} ({details.model.dim}-d)"
        elif key == "disk_bytes":
            key, value = "size on disk", human_bytes(details.disk_bytes)
        click.echo(f"{key:>16}: {value}")


def human_bytes(count: int | None) -> str:
    """1536 → '1.5 KiB'."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


@main.command()
@store_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let web pages from ORIGIN call the API (repeatable; '*' for any, e.g. clip-front).",
)
@click.option(
    "--api-key",
    envvar="ANYSHOT_API__API_KEY",
    metavar="KEY",
    help="Require this key (header X-API-Key) on every endpoint but /healthz and the page.",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
def serve(
    store: str | None,
    model: str | None,
    pretrained: str | None,
    host: str,
    port: int,
    cors_origins: tuple[str, ...],
    api_key: str | None,
    log_level: str,
) -> None:
    """Serve the HTTP API and the search page until stopped (Ctrl-C).

    The server owns the store: `anyshot index` and `anyshot search` on the same store folder
    go through it (indexing runs in the server while it keeps answering searches). It also
    speaks clip-retrieval's clip-back protocol, so clip-front works against it.

    \b
    Examples:
      anyshot serve --store ./index                      # http://127.0.0.1:8000/
      anyshot serve --store ./index --port 1234 --cors-origin '*'
      curl 'http://127.0.0.1:8000/search?q=a+red+circle&k=5'
    """
    import uvicorn

    from search.api import create_app

    settings = build_settings(store=store, model=model, pretrained=pretrained)
    update: dict[str, Any] = {}
    if cors_origins:
        update["cors_origins"] = list(cors_origins)
    if api_key:
        update["api_key"] = api_key
    if update:
        settings.api = type(settings.api).model_validate(
            settings.api.model_dump(exclude_unset=True) | update
        )
    local_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{'[' + local_host + ']' if ':' in local_host else local_host}:{port}"
    with user_errors():
        from indexer.stores.edge import EdgeStore
        from indexer.stores.opening import open_store

        # A locked or broken store is one line here, not a traceback from the server's startup.
        with open_store(settings.store) as opened:
            if isinstance(opened, EdgeStore):
                opened.hold()  # an empty folder held by another server too
        # The port too: bound here, before saying "serving at", and handed to uvicorn.
        listener = bind_listener(host, port)
        app = create_app(settings, advertise_url=url)
        click.echo(f"anyshot serving {settings.store.location} at {url}/", err=True)
        if host not in ("127.0.0.1", "localhost", "::1") and settings.api.api_key is None:
            click.secho(
                f"warning: listening on {host} without an API key: anyone who reaches this "
                "port can search, read the indexed images and start index runs (--api-key)",
                fg="yellow",
                err=True,
            )
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level)
        server = uvicorn.Server(config)
        with listener:
            try:
                server.run(sockets=[listener])
            except SystemExit as exc:  # uvicorn's way of saying the app did not start
                if exc.code not in (None, 0):
                    raise ConfigError("the server could not start (see the log above)") from exc


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``.

    Raises:
        ConfigError: The address cannot be used (the port is taken, the host is unknown).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
        raise ConfigError(f"cannot listen on {host}:{port}: {why}") from exc
    return listener


@main.group()
def concept() -> None:
    """Named concepts: the mean of a few example images, searchable with --name.

    \b
    Examples:
      anyshot concept add my-cat cat1.jpg cat2.jpg cat3.jpg
      anyshot concept list
      anyshot search --name my-cat
      anyshot concept remove my-cat
    """


@concept.command("add")
@click.argument("name")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the concept as JSON.")
def concept_add(
    name: str,
    images: tuple[str, ...],
    store: str | None,
    model: str | None,
    pretrained: str | None,
    as_json: bool,
) -> None:
    """Define (or redefine) concept NAME from example IMAGE files or URLs.

    \b
    Example:
      anyshot concept add grandma grandma-1.jpg grandma-2.jpg --store ./index
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with user_errors(), open_client(settings) as client:
        defined = client.add_concept(name, list(images))
    data = defined.to_dict()
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"concept {name!r} defined from {len(images)} images")


@concept.command("list")
@store_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def concept_list(
    store: str | None, model: str | None, pretrained: str | None, as_json: bool
) -> None:
    """List the concepts of the collection.

    \b
    Example:
      anyshot concept list --json
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with user_errors(), open_client(settings) as client:
        defined = client.concepts()
    if as_json:
        for item in defined:
            click.echo(json.dumps(item.to_dict()))
        return
    if not defined:
        click.echo("no concepts (add one: anyshot concept add NAME IMAGE...)")
        return
    width = max(len(item.name) for item in defined)
    for item in defined:
        click.echo(
            f"{item.name:<{width}}  {len(item.examples)} examples: {', '.join(item.examples)}"
        )


@concept.command("remove")
@click.argument("name")
@store_options
def concept_remove(name: str, store: str | None, model: str | None, pretrained: str | None) -> None:
    """Remove concept NAME.

    \b
    Example:
      anyshot concept remove grandma
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with user_errors(), open_client(settings) as client:
        client.remove_concept(name)
    click.echo(f"concept {name!r} removed")


@main.command()
@click.option(
    "--labels",
    "labels_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A file of labels, one per line.",
)
@store_options
@click.option(
    "--top", type=click.IntRange(1, 100), default=1, show_default=True, help="Tags per image."
)
@click.option(
    "--min-score",
    type=FiniteFloatRange(0, 1),
    metavar="SCORE",
    help="Only tags with at least this probability (softmax over the labels, 0..1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def tag(
    labels_file: str,
    store: str | None,
    model: str | None,
    pretrained: str | None,
    top: int,
    min_score: float | None,
    as_json: bool,
) -> None:
    """Tag every image with its best labels from --labels FILE (zero-shot).

    Tags are stored in the payload: search them with --filter tag=LABEL.

    \b
    Examples:
      printf 'cat\\ndog\\nbeach\\n' > labels.txt
      anyshot tag --labels labels.txt --top 2 --store ./index
      anyshot search "sunset" --filter tag=beach
    """
    from search.tagging import read_labels

    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with user_errors():
        labels = read_labels(labels_file)
        with open_client(settings) as client, progress_bar(enabled=not as_json) as progress:
            report = client.tag(labels, top=top, min_score=min_score, progress=progress)
    data = report.to_dict()
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"tagged {report.tagged} of {report.images} images in {report.seconds:.1f} s")
    for label, count in report.counts.items():
        click.echo(f"{count:>8}  {label}")


@main.command()
@store_options
@click.option(
    "--threshold",
    type=FiniteFloatRange(0, 1),
    metavar="SCORE",
    help="Cosine similarity from which images count as duplicates (default: near-identical).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per group.")
def dupes(
    store: str | None,
    model: str | None,
    pretrained: str | None,
    threshold: float | None,
    as_json: bool,
) -> None:
    """Find groups of duplicate and near-duplicate images.

    \b
    Examples:
      anyshot dupes --store ./index
      anyshot dupes --threshold 0.95 --json
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with (
        user_errors(),
        open_client(settings) as client,
        progress_bar(enabled=not as_json) as progress,
    ):
        groups = client.duplicates(threshold=threshold, progress=progress)
    if as_json:
        for group in groups:
            click.echo(json.dumps(group.to_dict()))
        return
    if not groups:
        click.echo("no duplicates")
        return
    for number, group in enumerate(groups, start=1):
        click.secho(f"group {number}: {len(group.uris)} images, score {group.score:.3f}", bold=True)
        for uri in group.uris:
            click.echo(f"  {uri}")
