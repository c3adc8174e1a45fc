"""A real HTTP webhook receiver for tests: answers each path with a scripted list of statuses."""

from __future__ import annotations

import select
import socket
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


@dataclass
class SlowReceiver:
    """A receiver that answers as slowly as an attacker would: `/headers` trickles its status
    line and headers a byte a second; `/body` sends `200` with a 100 kB Content-Length at
    once, then a byte every 5 s. Neither ever trips a per-read timeout. `most_at_once` is the
    most `/headers` exchanges open together."""

    url: str
    connections: int = 0
    in_flight: int = 0
    # Exchanges that stay open (the trickled headers): counted once the request is read, so
    # the figure is not blurred by a closed connection the server thread has yet to notice.
    hanging: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


@contextmanager
def slow_receiver() -> Iterator[SlowReceiver]:
    listener = socket.create_server(("127.0.0.1", 0))
    receiver = SlowReceiver(url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    stopping = threading.Event()

    def serve(conn: socket.socket) -> None:
        with receiver.lock:
            receiver.connections += 1
            receiver.in_flight += 1
        hanging = False
        try:
            request = _read_request(conn)
            if b"/body" not in request.split(b"\r\n", 1)[0]:
                hanging = True
                with receiver.lock:
                    receiver.hanging += 1
                    receiver.most_at_once = max(receiver.most_at_once, receiver.hanging)
            if b"/body" in request.split(b"\r\n", 1)[0]:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                pause, trickle = 5.0, b"x" * 100000
            else:
                status = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n"
                pause, trickle = 1.0, status + b"x-pad: y\r\n" * 99
            for byte in trickle:
                readable, _, _ = select.select([conn], [], [], pause)
                if stopping.is_set() or (readable and not conn.recv(1)):
                    return  # the sender hung up
                conn.sendall(bytes([byte]))
        except OSError:
            pass  # the sender gave up: that is the point
        finally:
            with receiver.lock:
                receiver.in_flight -= 1
                receiver.hanging -= 1 if hanging else 0
            conn.close()

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield receiver
    finally:
        stopping.set()
        listener.close()
