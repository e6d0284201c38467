"""``anyshot concept add/list/remove``: names defined by example images."""

from __future__ import annotations

import click

from indexer.config import build_settings
from search.cli.common import echo_json, json_option, open_collection, store_options


@click.group()
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
@json_option("Print the concept as JSON.")
def concept_add(
    name: str,
    images: tuple[str, ...],
    store: str | None,
    model: str | None,
    pretrained: str | None,
    as_json: bool,
) -> None:
    """Define (or redefine) concept NAME from example IMAGE files, URLs or indexed ids (id:N).

    \b
    Example:
      anyshot concept add grandma grandma-1.jpg grandma-2.jpg --store ./index
    """
    from search.face import example_body
    from search.messages import ConceptRequest

    settings = build_settings(store=store, model=model, pretrained=pretrained)
    # The examples are read here, before the collection opens: a bad path fails at once.
    request = ConceptRequest(examples=[example_body(image) for image in images])
    with open_collection(settings) as client:
        defined = client.define_concept(name, request)
    if as_json:
        echo_json(defined.to_dict())
        return
    click.echo(f"concept {name!r} defined from {len(images)} images")


@concept.command("list")
@store_options
@json_option("One JSON object per line.")
def concept_list(
    store: str | None, model: str | None, pretrained: str | None, as_json: bool
) -> None:
    """List the concepts of the collection.

    \b
    Example:
      anyshot concept list --json
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with open_collection(settings) as client:
        defined = client.concepts()
    if as_json:
        for item in defined:
            echo_json(item.to_dict())
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
    with open_collection(settings) as client:
        client.remove_concept(name)
    click.echo(f"concept {name!r} removed")
