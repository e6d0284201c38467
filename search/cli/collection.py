"""``anyshot info``, ``anyshot tag`` and ``anyshot dupes``: the collection as a whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from indexer.config import build_settings
from indexer.errors import StoreNotFoundError
from search.cli.common import (
    FiniteFloatRange,
    echo_json,
    human_bytes,
    json_option,
    open_collection,
    progress_bar,
    store_options,
)

if TYPE_CHECKING:
    from search.face import CollectionInfo
    from search.results import DuplicateGroup, TagReport


@click.command()
@store_options
@json_option("Print one JSON object.")
def info(store: str | None, model: str | None, pretrained: str | None, as_json: bool) -> None:
    """Show the collection: name, location, backend, model, number of images, size on disk.

    Loads no model. A location that holds no collection is an error (exit status 1).

    \b
    Examples:
      anyshot info --store ./index
      anyshot info --json
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with open_collection(settings) as client:
        details = client.info()
    if details.model is None and not details.points:
        raise StoreNotFoundError(
            f"no collection at {details.location}: index images first (anyshot index FOLDER "
            f"--store {settings.store.location})"
        )
    if as_json:
        echo_json(details.model_dump())
        return
    print_info(details)


def print_info(details: CollectionInfo) -> None:
    """The collection's details, one ``key: value`` line each."""
    from indexer.schema import ModelIdentity

    for key, value in details.model_dump().items():
        if key == "model" and details.model is not None:
            identity = ModelIdentity.from_dict(details.model)
            value = f"{identity.label} ({identity.dim}-d)"
        elif key == "disk_bytes":
            key, value = "size on disk", human_bytes(details.disk_bytes)
        click.echo(f"{key:>16}: {value}")


@click.command()
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
@json_option("Print the report as JSON.")
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
    from search.labels import read_labels

    settings = build_settings(store=store, model=model, pretrained=pretrained)
    labels = read_labels(labels_file)  # a bad file fails before the collection opens
    with (
        open_collection(settings) as client,
        progress_bar(enabled=not as_json, desc="tagging") as progress,
    ):
        report = client.tag(labels, top=top, min_score=min_score, progress=progress)
    print_tag_report(report, as_json=as_json)


def print_tag_report(report: TagReport, *, as_json: bool) -> None:
    """What tagging did: one JSON object, or a line and the count of each tag."""
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(f"tagged {report.tagged} of {report.images} images in {report.seconds:.1f} s")
    for label, count in report.counts.items():
        click.echo(f"{count:>8}  {label}")


@click.command()
@store_options
@click.option(
    "--threshold",
    type=FiniteFloatRange(0, 1),
    metavar="SCORE",
    help="Cosine similarity from which images count as duplicates (default: near-identical).",
)
@json_option("One JSON object per group.")
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
        open_collection(settings) as client,
        progress_bar(enabled=not as_json, desc="comparing") as progress,
    ):
        groups = client.duplicates(threshold=threshold, progress=progress)
    print_groups(groups, as_json=as_json)


def print_groups(groups: list[DuplicateGroup], *, as_json: bool) -> None:
    """Duplicate groups: one JSON object each, or each group's images under a heading."""
    if as_json:
        for group in groups:
            echo_json(group.to_dict())
        return
    if not groups:
        click.echo("no duplicates")
        return
    for number, group in enumerate(groups, start=1):
        click.secho(f"group {number}: {len(group.uris)} images, score {group.score:.3f}", bold=True)
        for uri in group.uris:
            click.echo(f"  {uri}")
