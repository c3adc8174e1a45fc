"""A real HTTP webhook receiver for tests: answers each path with a scripted list of statuses."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float = field(default_factory=time.time)


@dataclass
class Receiver:
    url: str
    scripts: dict[str, list[int]] = field(default_factory=dict)
    received: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))

    def script(self, path: str, *statuses: int) -> str:
        """Answer `path` with these statuses in turn, then 200."""
        self.scripts[path] = list(statuses)
        return self.url + path


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            script = receiver.scripts.get(self.path, [])
            status = script.pop(0) if script else 200
            receiver.received[self.path].append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
            )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
