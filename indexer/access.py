"""What an index run or a server may read: local files under allowed folders, URLs by policy.

Every byte of an image that anyshot reads goes through this module, so one set of rules holds
for the CLI, the Prefect flows and the HTTP API:

- **local files** are opened without blocking and checked *after* opening: only regular files
  (a FIFO, a socket or a device is refused at once, never read), and, when the policy names
  root folders, only files whose real path (links resolved, as the kernel opened it) lies
  under one of them;
- **URLs** are fetched only when the policy allows it, over http(s) only, with a total
  deadline and a size cap; when private hosts are not allowed, every address a host resolves
  to must be public (loopback, private, link-local, multicast and reserved addresses are
  refused before connecting, redirects included) unless it is listed in ``allowed_hosts``.

Errors are :class:`~indexer.errors.ImageDecodeError` with a short reason, as for bad images.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import ipaddress
import os
import socket
import stat
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from indexer.errors import ImageDecodeError

if TYPE_CHECKING:
    from indexer.config import ApiSettings, IndexSettings

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""Files and downloads larger than this are refused."""

MAX_REDIRECTS = 5
USER_AGENT = "anyshot/0.1"
_READ_CHUNK = 64 * 1024
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """What may be read.

    Attributes:
        roots: Real paths of the folders local files must lie in (links resolved); None
            allows any local file the process can read.
        fetch_urls: Whether http(s) URLs may be downloaded at all.
        private_hosts: Whether URLs may reach non-public addresses (loopback, private,
            link-local, reserved). A person indexing their own list may; a server that
            fetches what clients name may not.
        allowed_hosts: Host names, addresses or CIDR networks allowed although not public.
        connect_timeout: Seconds to wait for a connection or for each read.
        deadline: Seconds one download may take in all, however slowly the server sends.
        max_bytes: Files and downloads larger than this are refused.
    """

    roots: tuple[str, ...] | None = None
    fetch_urls: bool = True
    private_hosts: bool = True
    allowed_hosts: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    deadline: float = 60.0
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def for_index(cls, index: IndexSettings) -> AccessPolicy:
        """The policy of an index run started by the person at the keyboard: read anything."""
        return cls(deadline=index.download_deadline)

    @classmethod
    def for_server(
        cls, api: ApiSettings, *, roots: Iterable[str | os.PathLike[str]] | None = None
    ) -> AccessPolicy:
        """The policy of what a server does for its clients.

        Args:
            api: The server's settings: URL fetching, allowed hosts, deadline.
            roots: Folders local files must lie in (``api.index_roots`` for index runs);
                None or empty allows any local file.
        """
        resolved = resolve_roots(roots) if roots else None
        return cls(
            roots=resolved or None,
            fetch_urls=api.fetch_image_urls,
            private_hosts=False,
            allowed_hosts=tuple(api.fetch_allowed_hosts),
            connect_timeout=min(10.0, api.download_deadline),
            deadline=api.download_deadline,
            max_bytes=min(DEFAULT_MAX_BYTES, max(api.max_upload_bytes, 1)),
        )

    def path_refusal(self, real_path: str) -> str | None:
        """Why a local file (by its real path) may not be read, or None if it may."""
        if self.roots is None or within_roots(real_path, self.roots):
            return None
        return "outside the folders this run may read"

    def url_refusal(self, url: str) -> str | None:
        """Why a URL may not be fetched (before any connection), or None if it may be tried."""
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            return f"unsupported URL scheme {scheme!r}"
        if not self.fetch_urls:
            return "URL fetching is off (api.fetch_image_urls)"
        return None

    def address_refusal(self, host: str, address: str) -> str | None:
        """Why ``host``, resolved to ``address``, may not be connected to, or None."""
        if self.private_hosts or _host_allowed(host, address, self.allowed_hosts):
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_global and not ip.is_multicast:
            return None
        return (
            f"{host} is not a public address ({ip}); the server fetches only from public hosts "
            f"(api.fetch_allowed_hosts lists exceptions)"
        )


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words ("a FIFO", "a socket", ...)."""
    return next((name for test, name in _SPECIAL_KINDS if test(mode)), "special file")


def resolve_roots(roots: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Real paths of folders (``~`` expanded, links resolved), in the order given, no repeats."""
    resolved = (os.path.realpath(os.path.expanduser(os.fspath(root))) for root in roots)
    return tuple(dict.fromkeys(resolved))


def within_roots(path: str, roots: Iterable[str]) -> bool:
    """True when ``path`` is one of ``roots`` or lies below one (both real, absolute paths)."""
    for root in roots:
        if root == os.sep or path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


# -- local files ----------------------------------------------------------------------------------


@contextlib.contextmanager
def open_regular_file(
    path: str, *, roots: tuple[str, ...] | None = None, shown: str | None = None
) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open a local file for reading if it is a regular file (under ``roots``, if given).

    The file is opened with ``O_NONBLOCK`` so that a FIFO cannot hang the caller, then checked
    with ``fstat`` and, for ``roots``, by the real path the kernel opened (so a link swapped in
    between a check and the open cannot lead elsewhere).

    Args:
        path: The file's path.
        roots: Real paths of allowed folders; None allows any.
        shown: How the file is named in errors (its URI); default ``path``.

    Yields:
        The open binary file (blocking mode) and its ``stat`` result.

    Raises:
        ImageDecodeError: Missing, unreadable, not a regular file, or outside ``roots``.
    """
    shown = shown if shown is not None else path
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImageDecodeError(shown, _open_reason(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageDecodeError(shown, f"not a regular file ({file_kind(info.st_mode)})")
        if roots is not None:
            refusal = AccessPolicy(roots=roots).path_refusal(_real_path(fd, path))
            if refusal is not None:
                raise ImageDecodeError(shown, refusal)
        os.set_blocking(fd, True)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file, info


def read_local_file(
    path: str,
    *,
    roots: tuple[str, ...] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    shown: str | None = None,
) -> bytes:
    """Read a whole regular file (see :func:`open_regular_file`), refusing large ones.

    Raises:
        ImageDecodeError: As :func:`open_regular_file`, or empty, or larger than
            ``max_bytes``.
    """
    shown = shown if shown is not None else path
    with open_regular_file(path, roots=roots, shown=shown) as (file, info):
        if info.st_size > max_bytes:
            raise ImageDecodeError(shown, f"larger than {max_bytes} bytes")
        try:
            data = file.read(max_bytes + 1)  # a file that grows while read stays capped
        except OSError as exc:
            raise ImageDecodeError(shown, f"cannot read: {_why(exc)}") from exc
    if not data:
        raise ImageDecodeError(shown, "empty file")
    if len(data) > max_bytes:
        raise ImageDecodeError(shown, f"larger than {max_bytes} bytes")
    return data


def _real_path(fd: int, path: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")  # what the kernel opened: no race
    except OSError:
        return os.path.realpath(path)


def _open_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    if exc.errno == errno.ENXIO:  # what opening a socket gives
        return "not a regular file (a socket)"
    return f"cannot read: {_why(exc)}"


def _why(exc: OSError) -> str:
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


# -- URLs -----------------------------------------------------------------------------------------


class _Refused(Exception):
    """A connection the policy does not allow; carries the reason."""


class _DeadlineWatch:
    """Shuts a connection's socket when the download's deadline passes, however it blocks."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _DeadlineWatch:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def watch(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._connection is not None:
                _shut(self._connection)


def _shut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _connect_checked(host: str, port: int, timeout: float, policy: AccessPolicy) -> socket.socket:
    """Resolve ``host``, refuse it if any address is not allowed, connect to an allowed one."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    for *_, sockaddr in addresses:
        refusal = policy.address_refusal(host, str(sockaddr[0]))
        if refusal is not None:
            raise _Refused(refusal)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"cannot connect to {host}")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    policy: AccessPolicy = AccessPolicy()

    def connect(self) -> None:
        self.sock = _connect_checked(self.host, self.port, self.timeout, self.policy)


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    policy: AccessPolicy = AccessPolicy()

    def connect(self) -> None:
        sock = _connect_checked(self.host, self.port, self.timeout, self.policy)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch_url(url: str, policy: AccessPolicy) -> bytes:
    """Download one image URL under ``policy``: checked hosts, redirects, deadline, size cap.

    Args:
        url: An http(s) URL.
        policy: What may be fetched, how long it may take and how large it may be.

    Returns:
        The body, never empty.

    Raises:
        ImageDecodeError: Refused by the policy, or the download failed, timed out or was too
            large; ``reason`` says which.
    """
    refusal = policy.url_refusal(url)
    if refusal is not None:
        raise ImageDecodeError(url, refusal)
    started = time.monotonic()
    with _DeadlineWatch(policy.deadline) as watch:
        try:
            return _fetch(url, policy, started, watch)
        except ImageDecodeError:
            raise
        except _Refused as exc:
            raise ImageDecodeError(url, f"refused: {exc}") from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if watch.expired:
                raise ImageDecodeError(
                    url, f"download took longer than {policy.deadline:g} s"
                ) from exc
            raise ImageDecodeError(url, f"download failed: {exc or type(exc).__name__}") from exc


def _fetch(url: str, policy: AccessPolicy, started: float, watch: _DeadlineWatch) -> bytes:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(current)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ImageDecodeError(url, f"redirected to an unsupported URL {current!r}")
        kind = _CheckedHTTPSConnection if scheme == "https" else _CheckedHTTPConnection
        port = parts.port or (443 if scheme == "https" else 80)  # never parsed from the host
        connection = kind(parts.hostname, port, timeout=policy.connect_timeout)
        connection.policy = policy
        watch.watch(connection)
        try:
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            connection.request(
                "GET", target, headers={"User-Agent": USER_AGENT, "Accept": "image/*"}
            )
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                current = urllib.parse.urljoin(current, location)
                continue
            if response.status != 200:
                raise ImageDecodeError(url, f"HTTP {response.status}")
            return _read_body(response, url, policy, started, watch)
        finally:
            connection.close()
    raise ImageDecodeError(url, f"more than {MAX_REDIRECTS} redirects")


def _read_body(
    response: http.client.HTTPResponse,
    url: str,
    policy: AccessPolicy,
    started: float,
    watch: _DeadlineWatch,
) -> bytes:
    length = response.getheader("Content-Length", "")
    if length.isdigit() and int(length) > policy.max_bytes:
        raise ImageDecodeError(url, f"larger than {policy.max_bytes} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        if watch.expired or time.monotonic() - started > policy.deadline:
            raise ImageDecodeError(url, f"download took longer than {policy.deadline:g} s")
        chunk = response.read1(_READ_CHUNK)  # what has arrived: a trickle cannot stall us
        if not chunk:
            break
        total += len(chunk)
        if total > policy.max_bytes:
            raise ImageDecodeError(url, f"larger than {policy.max_bytes} bytes")
        chunks.append(chunk)
    if watch.expired:
        raise ImageDecodeError(url, f"download took longer than {policy.deadline:g} s")
    data = b"".join(chunks)
    if not data:
        raise ImageDecodeError(url, "empty file")
    return data


def _host_allowed(host: str, address: str, allowed: tuple[str, ...]) -> bool:
    if not allowed:
        return False
    host = host.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".")
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if entry == host:
                return True
    return False
