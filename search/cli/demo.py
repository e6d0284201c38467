"""``anyshot demo``: a generated collection of coloured shapes, searched offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from search.cli.common import progress_bar

if TYPE_CHECKING:
    from search.demo import DemoResult


@click.command()
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
    with progress_bar(enabled=not as_json, desc="demo") as progress:
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
