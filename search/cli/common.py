"""What every command shares: options, opening the collection, output, and the error edge.

Commands build settings from their options, open the collection with :func:`open_collection`
(:func:`search.connect`: in this process, or through the ``anyshot serve`` that holds it),
call one method of the face, and format what it returns. Nothing here imports torch, prefect
or a store backend: a command's own argument checks answer before anything heavy loads.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from indexer.config import Settings
from indexer.errors import AnyshotError

if TYPE_CHECKING:
    from search.face import CollectionClient
    from search.results import Hit, SearchResult

F = TypeVar("F", bound=Callable[..., Any])


# -- options --------------------------------------------------------------------------------------


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
        help="A folder (embedded), :memory:, http(s)://qdrant:6333 or the URL of an anyshot "
        "serve. Default: $ANYSHOT_STORE__LOCATION or ~/.local/share/anyshot/store.",
    )(fn)
    return fn


def json_option(help_text: str) -> Callable[[F], F]:
    """The ``--json`` flag, with what it prints."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


class FiniteFloatRange(click.FloatRange):
    """A float in a range that is a real number: ``nan`` and ``inf`` are refused (click's
    FloatRange lets ``nan`` through, since every comparison with it is false)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class FiniteFloat(click.ParamType):
    """Any finite float, range left to the library: a value out of its range is then the
    library's one-line error (exit 1), as from Python or HTTP."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# -- the collection -------------------------------------------------------------------------------


def open_collection(settings: Settings) -> CollectionClient:
    """The collection the settings name, through :func:`search.connect`: in this process, or
    through the ``anyshot serve`` that holds it."""
    from search.connection import connect

    return connect(settings=settings)


def is_remote(client: CollectionClient) -> bool:
    """True when the collection is reached through a running ``anyshot serve``."""
    from search.remote_client import RemoteImageSearch

    return isinstance(client, RemoteImageSearch)


# -- output ---------------------------------------------------------------------------------------


def echo_json(data: Any) -> None:
    """Print one JSON value on one line."""
    click.echo(json.dumps(data))


def warn(message: str) -> None:
    """A yellow ``warning:`` line on stderr."""
    click.secho(f"warning: {message}", fg="yellow", err=True)


@contextmanager
def progress_bar(
    *, enabled: bool = True, desc: str = "indexing", unit: str = "img"
) -> Iterator[Callable[[int, int], None]]:
    """A terminal progress bar (rate, ETA) on stderr; yields a ``(done, total)`` callback.

    The bar stays off when stderr is not a terminal.
    """
    from tqdm import tqdm

    bar = tqdm(
        total=0,
        unit=unit,
        desc=desc,
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


def print_hits(hits: list[Hit], *, as_json: bool, first_rank: int = 1) -> None:
    """Print hits as JSON lines or as a table of rank, score and path."""
    if as_json:
        for hit in hits:
            echo_json(hit.to_dict())
        return
    if not hits:
        click.echo("no results")
        return
    width = len(str(first_rank + len(hits) - 1))
    click.secho(f"{'#':>{width}}  {'score':>6}  path", bold=True)
    for rank, hit in enumerate(hits, start=first_rank):
        moment = f" @ {clock(hit.t)}" if hit.t is not None else ""
        click.echo(f"{rank:>{width}}  {hit.score:6.3f}  {hit.uri}{moment}")


def clock(seconds: float) -> str:
    """83.4 → '0:01:23': a moment of a video as the table prints it."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def print_result(
    result: SearchResult, *, as_json: bool, explain: bool = False, first_rank: int = 1
) -> None:
    """Print a search's hits (:func:`print_hits`), with a line "no confident match" above the
    table when the answer says so (and there are hits, or the minimum confidence dropped them);
    ``explain``: the confidence above the table, or with JSON one last line
    ``{"explain": {...}}``."""
    details = result.explain
    if as_json:
        print_hits(result.hits, as_json=True)
        if explain:
            echo_json({"explain": details})
        return
    if explain and details.get("confidence") is not None:
        click.echo(
            f"confidence {details['confidence']:.2f} (best score {details.get('best_score')}, "
            f"{details.get('score_scale')})"
        )
    # Without hits, "no results" says it all, unless the minimum confidence took them away.
    if details.get("no_match") and (result.hits or details.get("below_min_confidence")):
        click.secho("no confident match", fg="yellow", bold=True)
    print_hits(result.hits, as_json=False, first_rank=first_rank)


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


# -- the error edge -------------------------------------------------------------------------------


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
