"""Downloading a result file: streamed to disk with SHA-256 computed on the way, a size cap on
the bytes as written (a compressed body is refused: only `identity` is asked for), one
deadline by the clock for the whole download — headers included: a watchdog closes the
connection when it passes, so a source sending a byte a second cannot hold a thread —, http(s)
only, and every redirect checked by the SSRF guard before it is followed (a hostile upstream
URL cannot reach inside our network)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.config import Settings
from core.netguard import Unresolved, UnsafeURL, resolve
from upstreams.http import USER_AGENT, tls_context

MAX_REDIRECTS = 5
CHUNK = 256 * 1024


class FetchError(Exception):
    """`gone`: the source no longer has the file; `refused`: the SSRF guard will not fetch
    from where the upstream pointed. Neither is retried, and neither throws away a paid
    result: the job succeeds without soraq's copy (worker.archive)."""

    def __init__(
        self, code: str, message: str, *, retryable: bool, gone: bool = False, refused: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable
        self.gone, self.refused = gone, refused


@dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int


def fetch(url: str, dest: Path, settings: Settings) -> Fetched:
    deadline = time.monotonic() + settings.archive_timeout
    with httpx.Client(
        timeout=httpx.Timeout(30.0, connect=10.0),
        verify=tls_context(),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        trust_env=False,
    ) as http:
        # The deadline by the clock: reads each have a timeout, but one byte now and then
        # would renew it for ever. At the deadline the connection is closed under the read.
        watchdog = threading.Timer(settings.archive_timeout, http.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            return _fetch(http, url, dest, settings, deadline)
        except (httpx.HTTPError, RuntimeError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise FetchError(
                    "archive_failed",
                    f"the download took longer than {settings.archive_timeout:g} s",
                    retryable=True,
                ) from None
            if isinstance(exc, httpx.HTTPError):
                raise FetchError(
                    "archive_failed", f"{type(exc).__name__}: {exc}"[:300], retryable=True
                ) from None
            raise
        finally:
            watchdog.cancel()


def _fetch(
    http: httpx.Client, url: str, dest: Path, settings: Settings, deadline: float
) -> Fetched:
    for _ in range(MAX_REDIRECTS + 1):
        try:
            checked = resolve(url, allow_http=True, allowed=settings.upstream_networks)
        except Unresolved as exc:
            raise FetchError("archive_failed", f"source URL {exc}", retryable=True) from None
        except UnsafeURL as exc:
            raise FetchError(
                "archive_refused", f"source URL {exc}", retryable=False, refused=True
            ) from None
        with http.stream(
            "GET",
            checked.pinned_url,
            headers={"host": checked.host_header},
            extensions={"sni_hostname": checked.host},
        ) as response:
            if response.is_redirect and "location" in response.headers:
                url = str(httpx.URL(url).join(response.headers["location"]))
                continue
            if response.status_code in (404, 410, 403):
                raise FetchError(
                    "archive_source_gone",
                    f"the source answered HTTP {response.status_code}",
                    retryable=False,
                    gone=True,
                )
            if response.status_code != 200:
                raise FetchError(
                    "archive_failed",
                    f"the source answered HTTP {response.status_code}",
                    retryable=response.status_code >= 500 or response.status_code == 429,
                )
            return _save(response, dest, settings, deadline)
    raise FetchError("archive_failed", "too many redirects", retryable=False)


def _save(response: httpx.Response, dest: Path, settings: Settings, deadline: float) -> Fetched:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for identity: a compressed body is a bomb's shape (204 kB on the wire was once
        # 200 MB on disk), and a video gains nothing from it.
        raise FetchError(
            "archive_failed",
            f"the source sent a {encoding}-encoded body though asked for identity",
            retryable=False,
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.archive_max_bytes:
        raise FetchError(
            "archive_too_large",
            f"the video is {declared} bytes; ARCHIVE_MAX_BYTES is {settings.archive_max_bytes}",
            retryable=False,
        )
    digest, size = hashlib.sha256(), 0
    with dest.open("wb") as out:
        # Each read as it arrives (a 256 kB re-chunking would check the clock only after a
        # whole chunk came, however slowly).
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > settings.archive_max_bytes:
                raise FetchError(
                    "archive_too_large",
                    f"the video is over ARCHIVE_MAX_BYTES ({settings.archive_max_bytes})",
                    retryable=False,
                )
            if time.monotonic() > deadline:
                raise FetchError(
                    "archive_failed",
                    f"the download took longer than {settings.archive_timeout:g} s",
                    retryable=True,
                )
            digest.update(chunk)
            out.write(chunk)
    return Fetched(digest.hexdigest(), size)
