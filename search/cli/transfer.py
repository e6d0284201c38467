"""``anyshot export`` and ``anyshot load``: a collection as Parquet shards, and back."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from indexer.config import build_settings
from indexer.stores.location import MEMORY_LOCATION, StoreLocation
from search.cli.common import echo_json, json_option, open_collection, progress_bar, warn

if TYPE_CHECKING:
    from indexer.transfer import LoadReport


@click.command("export")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--store", metavar="LOCATION", help="The store to export.")
@json_option("Print the count as JSON.")
def export_command(folder: str, store: str | None, as_json: bool) -> None:
    """Write the collection (vectors, payloads, concepts) as Parquet shards into FOLDER.

    The folder is on this machine, also when `anyshot serve` holds the store.

    \b
    Example (embedded store to a Qdrant server, without re-embedding):
      anyshot export ./snapshot --store ./index
      anyshot load ./snapshot --store http://qdrant:6333
    """
    settings = build_settings(store=store)
    with (
        open_collection(settings) as client,
        progress_bar(enabled=not as_json, desc="exporting", unit="img") as progress,
    ):
        count = client.export(folder, progress=progress)
    if as_json:
        echo_json({"exported": count, "folder": folder})
        return
    click.echo(f"exported {count} images to {folder}")


@click.command("load")
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
@json_option("Print the report as JSON.")
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
    settings = build_settings(store=store)
    if StoreLocation.parse(settings.store.location).is_memory:
        warn(
            f"--store {MEMORY_LOCATION} keeps nothing: the loaded images are gone when this "
            "command ends"
        )
    with (
        open_collection(settings) as client,
        progress_bar(enabled=not as_json, desc="loading", unit="shard") as progress,
    ):
        report = client.load(folder, trust=trust, progress=progress)
    if as_json:
        echo_json(report.to_dict())
    else:
        print_load_report(report)
    if not report.complete:
        refuse_incomplete_load(report, folder, as_json=as_json)


def print_load_report(report: LoadReport) -> None:
    """What was refused, one line each, then the summary line."""
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


def refuse_incomplete_load(report: LoadReport, folder: str, *, as_json: bool) -> None:
    """The one error line of a load that rejected something, and exit status 1."""
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
