"""``anyshot serve``: the HTTP API and the search page over one collection."""

from __future__ import annotations

import errno
import socket
from typing import Any

import click

from indexer.config import Settings, build_settings
from indexer.errors import ConfigError
from search.cli.common import store_options, warn


@click.command()
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
    settings = serve_settings(store, model, pretrained, cors_origins, api_key)
    local_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{'[' + local_host + ']' if ':' in local_host else local_host}:{port}"
    check_servable(settings)
    # The port too: bound here, before saying "serving at", and handed to uvicorn.
    with bind_listener(host, port) as listener:
        click.echo(f"anyshot serving {settings.store.location} at {url}/", err=True)
        if host not in ("127.0.0.1", "localhost", "::1") and settings.api.api_key is None:
            warn(
                f"listening on {host} without an API key: anyone who reaches this port can "
                "search, read the indexed images and start index runs (--api-key)"
            )
        run_server(settings, listener, host=host, port=port, url=url, log_level=log_level)


def serve_settings(
    store: str | None,
    model: str | None,
    pretrained: str | None,
    cors_origins: tuple[str, ...],
    api_key: str | None,
) -> Settings:
    """The server's settings: the environment's, with the options given."""
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
    return settings


def check_servable(settings: Settings) -> None:
    """Open the collection as the server will, and let it go: a store that another process
    holds, or that cannot be opened, is one line here, not a traceback from the server's
    start.

    Raises:
        StoreLockedError: Another process (another server too) holds the store folder.
        StoreError: The store cannot be opened.
    """
    from search.client import ImageSearch

    ImageSearch.for_server(settings).close()


def run_server(
    settings: Settings, listener: socket.socket, *, host: str, port: int, url: str, log_level: str
) -> None:
    """Run uvicorn with the API on a bound socket until it stops.

    Raises:
        ConfigError: The app did not start (uvicorn logged why).
    """
    import uvicorn

    from search.api import create_app

    app = create_app(settings, advertise_url=url)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
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
