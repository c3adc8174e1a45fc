"""A result download is bounded by the clock, not per read (issue 24, item 5), and a
compressed body is refused (item 7): against real local HTTP servers that misbehave."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import get_settings
from worker.fetch import FetchError, fetch


def serve(handler) -> Iterator[str]:  # type: ignore[no-untyped-def]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                listener.settimeout(0.2)
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed: the test is over
                return
            threading.Thread(target=handler, args=(conn, stop), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v.mp4"
    finally:
        stop.set()
        listener.close()


def trickle_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: 100000\r\n\r\n")
    while not stop.is_set():
        try:
            conn.sendall(b"x")
        except OSError:
            return
        time.sleep(0.2)


def trickle_headers(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    for byte in b"HTTP/1.1 200 OK\r\nx-slow: " + b"a" * 1000:
        if stop.is_set():
            return
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(0.2)


def gzipped(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    body = gzip.compress(b"\0" * 5_000_000)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    conn.close()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("UPSTREAM_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("ARCHIVE_TIMEOUT", "2")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.mark.parametrize("handler", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_a_trickling_source_is_cut_at_the_deadline(settings, handler, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(handler)
    url = next(server)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(url, tmp_path / "v.mp4", settings)
    elapsed = time.monotonic() - started
    assert caught.value.retryable
    assert "longer than 2 s" in caught.value.message
    assert elapsed < 4, elapsed  # the deadline, not one read timeout per byte
    next(server, None)


def test_a_compressed_body_is_refused(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(gzipped)
    url = next(server)
    with pytest.raises(FetchError, match="gzip-encoded"):
        fetch(url, tmp_path / "v.mp4", settings)
    assert not (tmp_path / "v.mp4").exists() or (tmp_path / "v.mp4").stat().st_size == 0
    next(server, None)
