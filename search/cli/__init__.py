"""The ``anyshot`` command line: a thin shell over the one face of a collection.

Each command builds settings from its options, opens the collection with
:func:`search.connect` (in this process, or through the ``anyshot serve`` that holds it), calls
one method, and formats the result. One module per group of commands; what they share (options,
output, the one-line error edge) is in :mod:`search.cli.common`.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from search.cli.collection import dupes, info, tag
from search.cli.common import AnyshotGroup, user_errors
from search.cli.concepts import concept
from search.cli.demo import demo
from search.cli.generator import generator
from search.cli.indexing import index, schedule
from search.cli.searching import search
from search.cli.serving import serve
from search.cli.transfer import export_command, load_command


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
    # Idle OpenMP threads sleep instead of spinning: beside decoding workers, or any other busy
    # process, spinning threads slow the model many times over. Read when torch loads; a value
    # the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


for command in (
    index,
    schedule,
    export_command,
    load_command,
    demo,
    info,
    serve,
    concept,
    generator,
    tag,
    dupes,
    search,
):
    main.add_command(command)

__all__ = ["AnyshotGroup", "main", "user_errors"]
