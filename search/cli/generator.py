"""``anyshot generator train``: the generator of visual features behind ``search --generate``."""

from __future__ import annotations

import click

from indexer.config import build_settings
from search.cli.common import echo_json, json_option, open_collection, store_options


@click.group()
def generator() -> None:
    """The collection's generator of visual features: it turns a description into image-like
    vectors, so that `anyshot search --generate` finds images of things named or described
    in words the model matches poorly.

    \b
    Examples:
      anyshot generator train --store ./index
      anyshot generator train --store ./index --captions captions.csv --json
      anyshot search --name vornel --generate --store ./index
    """


@generator.command("train")
@store_options
@click.option(
    "--captions",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A CSV, TSV or Parquet file of (image, caption) pairs, beside the captions found by "
    "themselves: labels.jsonl, .txt sidecars, XMP/IPTC descriptions.",
)
@click.option(
    "--kind",
    type=click.Choice(["mlp", "gan"]),
    default=None,
    help="gan: conditional GAN with a retrieval regulariser (Zhu et al. 2018; default, best "
    "measured); mlp: residual MLP, contrastive loss.",
)
@click.option("--epochs", type=click.IntRange(1, 10_000), default=None, help="Default 60.")
@json_option("Print the summary as one JSON object.")
def generator_train(
    store: str | None,
    model: str | None,
    pretrained: str | None,
    captions: str | None,
    kind: str | None,
    epochs: int | None,
    as_json: bool,
) -> None:
    """Train the generator on the collection's captioned images and keep it with the collection.

    Needs at least 20 captioned images. Retraining replaces the generator.

    \b
    Examples:
      anyshot generator train --store ./index
      anyshot generator train --store ./index --captions captions.csv --kind gan --json
    """
    settings = build_settings(store=store, model=model, pretrained=pretrained)
    with open_collection(settings) as client:
        report = client.train_generator(captions=captions, kind=kind, epochs=epochs)
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"trained a {report['kind']} generator on {report['pairs']} captions of "
        f"{report['images']} images in {report['seconds']:.1f} s -> {report['file']}"
    )
