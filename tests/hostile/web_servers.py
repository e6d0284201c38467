"""Small web servers on 127.0.0.1 for the hostile HTTP tests: files, and a server that sends
one byte per second."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class WebServer:
    """A running local web server.

    Attributes:
        url: Its base URL (``http://127.0.0.1:PORT``).
        requests: The paths it was asked for, in order.
    """

    url: str
    requests: list[str] = field(default_factory=list)


@contextmanager
def web_server(
    files: dict[str, bytes], *, byte_seconds: float | None = None
) -> Iterator[WebServer]:
    """Serve ``files`` (path -> body) on a free port of 127.0.0.1.

    Args:
        files: Bodies by path (``/cat.png``); other paths answer 404.
        byte_seconds: When given, bodies are sent one byte per this many seconds (with a
            ``Content-Length``), as a server that trickles would.
    """
    served = WebServer(url="")
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if byte_seconds is None:
                self.wfile.write(body)
                return
            for index in range(len(body)):
                if stopping.is_set():
                    return
                try:
                    self.wfile.write(body[index : index + 1])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(byte_seconds)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
