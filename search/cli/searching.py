"""``anyshot search``: one query, in the one serialisable shape, answered by the face."""

from __future__ import annotations

import click

from indexer.config import build_settings
from search.cli.common import (
    FiniteFloat,
    FiniteFloatRange,
    json_option,
    open_collection,
    print_result,
    store_options,
)


@click.command()
@click.argument("text", required=False)
@click.option("--image", metavar="FILE|URL", help="Search by an example image.")
@click.option(
    "--name", metavar="NAME", help="Search by a name: a concept, a described name, or templates."
)
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
    "tag=cat, mtime>=2024-01-01, size<2MB, id=5; from the photos' own metadata: "
    "taken>=2023-06-01, taken<2024, place=Lisbon, country=PT, camera=iPhone, keyword=holiday, "
    "near=LAT,LON,KM, has=gps|taken|text. Filters without a query list the images that match.",
)
@click.option(
    "--ocr",
    metavar="WORDS",
    help="Images whose text (read by `anyshot index --ocr`) holds these words, best first "
    "(score: the fraction of the words held); alone or with a query and filters.",
)
@click.option(
    "--sort",
    type=click.Choice(["taken", "-taken"]),
    help="Order by the date taken: taken (oldest first) or -taken (newest first).",
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
    "--min-confidence",
    type=FiniteFloat(),
    metavar="P",
    help="No results at all when the query's confidence (0..1: does anything in the collection "
    "match?) is below P (default: ANYSHOT_SEARCH__MIN_CONFIDENCE, none).",
)
@click.option(
    "--expand/--no-expand",
    default=None,
    help="Visual query expansion: blend the top images into the query and search again "
    "(default: ANYSHOT_SEARCH__EXPAND, off).",
)
@click.option(
    "--generate/--no-generate",
    default=None,
    help="Search by generated visual features: the collection's generator (`anyshot generator "
    "train`) turns the text or the name's descriptions into image-like vectors (default: "
    "ANYSHOT_SEARCH__GENERATE, off).",
)
@click.option(
    "--collapse-duplicates", is_flag=True, help="Show one image of each near-duplicate group."
)
@click.option(
    "--group/--no-group",
    default=True,
    show_default=True,
    help="One result per video (its best moment, the others as moments); --no-group: every "
    "matching frame.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Say how sure the answer is: a line with its confidence above the table; with "
    '--json, one last line {"explain": {...}} (confidence, no_match, the route taken).',
)
@json_option("One JSON object per line, best first.")
def search(
    text: str | None,
    image: str | None,
    name: str | None,
    similar_to: int | None,
    negatives: tuple[str, ...],
    filters: tuple[str, ...],
    sort: str | None,
    ocr: str | None,
    store: str | None,
    model: str | None,
    pretrained: str | None,
    k: int,
    offset: int,
    threshold: float | None,
    min_confidence: float | None,
    expand: bool | None,
    generate: bool | None,
    collapse_duplicates: bool,
    group: bool,
    explain: bool,
    as_json: bool,
) -> None:
    """Search the collection by TEXT, an example --image, a --name, or an indexed --id; or
    list the images that match --filter alone; or find the words of --ocr in the images' text.

    Prints a table (rank, score, path; a video's as `path @ 0:01:23`, its best moment), or
    with --json one object per line (id, uri, score, payload; a video's also t, the seconds of
    its best moment, and moments, its other matching frames as {t, score}), best first. When
    nothing in the collection matches confidently, the table starts with a line "no confident
    match" (--min-confidence drops such results). While `anyshot serve` holds the store, the
    search goes through it (a search from the command line loads the model each time: for many
    searches, use `anyshot serve` or the Python client).

    \b
    Examples:
      anyshot search "a red circle"
      anyshot search "a beach" --not "people" --filter format=JPEG --threshold 0.2
      anyshot search "a red circle" --expand --collapse-duplicates
      anyshot search "a red circle" --min-confidence 0.5 --explain --json
      anyshot search --image query.jpg -k 20 --json
      anyshot search --name heart --filter folder=/data/shapes
      anyshot search --name vornel --generate --not "a plain background"
      anyshot search --id 1234567890
      anyshot search "a beach" --filter 'taken>=2023-06-01' --filter country=PT
      anyshot search --filter place=Lisbon --sort -taken --json
      anyshot search --filter near=38.72,-9.14,5 --filter has=taken
      anyshot search --ocr coffee --json
      anyshot search "a dog jumping into a lake" --no-group --json
      anyshot search "a receipt" --ocr coffee --filter 'taken>=2024'
    """
    from search.face import build_request

    settings = build_settings(store=store, model=model, pretrained=pretrained)
    # The query is checked and its image read here, before the collection opens.
    request = build_request(
        text,
        image=image,
        name=name,
        similar_to=similar_to,
        negatives=list(negatives),
        k=k,
        offset=offset,
        where=list(filters) or None,
        threshold=threshold,
        min_confidence=min_confidence,
        expand=expand,
        generate=generate,
        collapse_duplicates=collapse_duplicates,
        group=group,
        explain=True,  # the table's "no confident match" line needs the confidence
        sort=sort,
        ocr=ocr,
    )
    with open_collection(settings) as client:
        result = client.answer(request)
        # Printed before the client closes: closing may export the text tower (seconds, once
        # per model), which the answer need not wait for.
        print_result(result, as_json=as_json, explain=explain, first_rank=offset + 1)
