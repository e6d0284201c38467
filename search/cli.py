"""The ``anyshot`` command line: a thin shell over :class:`search.client.ImageSearch`."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from indexer.config import Settings, build_settings
from indexer.errors import AnyshotError

if TYPE_CHECKING:
    from search.client import ImageSearch
    from search.engine import Hit

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
def user_errors() -> Iterator[None]:
    """Turn anyshot errors into one red line on stderr and exit code 1."""
    try:
        yield
    except AnyshotError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.secho("interrupted", fg="red", err=True)
        sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="anyshot")
def main(verbose: int) -> None:
    """anyshot: search images by example, by name and by description.

    \b
    Examples:
      anyshot index ~/Pictures
      anyshot search "a dog on a beach"
      anyshot search --image ~/Pictures/dog.jpg -k 5 --json
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@main.command()
@click.argument("source")
@store_options
@click.option("--batch-size", type=click.IntRange(1, 65536), help="Images per stored batch.")
@click.option(
    "--include-hidden", is_flag=True, default=None, help="Index hidden files and folders too."
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
    as_json: bool,
) -> None:
    """Index the images of SOURCE: a folder, a list file (.txt or .parquet) or one image.

    Re-running skips unchanged images and removes vanished ones.

    \b
    Examples:
      anyshot index ~/Pictures --model anyshot-tiny --store ./index
      anyshot index urls.txt --store http://localhost:6333 --json
    """
    from tqdm import tqdm

    settings = build_settings(
        store=store,
        model=model,
        pretrained=pretrained,
        batch_size=batch_size,
        include_hidden=include_hidden,
    )
    with user_errors(), open_client(settings) as client:
        bar = tqdm(total=0, unit="img", desc="indexing", disable=None, file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = client.index(source, progress=progress)
        finally:
            bar.close()
    for problem in report.problems:
        click.secho(f"warning: {problem.path}: {problem.reason}", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    click.echo(
        f"indexed {report.indexed}, unchanged {report.unchanged}, removed "
        f"{report.removed}, skipped {report.skipped} in {report.seconds:.1f} s "
        f"({report.images_per_second:.1f} images/s)"
    )


@main.command()
@click.argument("text", required=False)
@click.option("--image", metavar="FILE|URL", help="Search by an example image.")
@click.option(
    "--id",
    "similar_to",
    type=int,
    metavar="ID",
    help="Search by an indexed image (more like this).",
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
@click.option("--threshold", type=float, help="Only results with at least this score.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, best first.")
def search(
    text: str | None,
    image: str | None,
    similar_to: int | None,
    store: str | None,
    model: str | None,
    pretrained: str | None,
    k: int,
    offset: int,
    threshold: float | None,
    as_json: bool,
) -> None:
    """Search the collection by TEXT, by an example --image, or by an indexed --id.

    \b
    Examples:
      anyshot search "a red circle"
      anyshot search --image query.jpg -k 20 --json
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with user_errors(), open_client(settings) as client:
        hits = client.search(
            text, image=image, similar_to=similar_to, k=k, offset=offset, threshold=threshold
        )
    print_hits(hits, as_json=as_json, first_rank=offset + 1)


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
    """Show the collection: location, backend, model, number of images, size on disk."""
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with user_errors(), open_client(settings) as client:
        details = client.info()
    data = {
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
        click.echo(f"{key:>16}: {value}")
