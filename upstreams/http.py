from __future__ import annotations

import ssl
from functools import cache

import httpx

USER_AGENT = "soraq/0.1 (+https://github.com/soraq/soraq)"


@cache
def tls_context() -> ssl.SSLContext:
    """Certificate checks as httpx does them by default. Building a context loads the CA
    bundle — about 20 ms of CPU under the GIL — so short-lived clients (one per download, one
    per webhook) share one per process instead of each building its own."""
    return httpx.create_ssl_context()


def make_client(
    base_url: str,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    # A real User-Agent: Kie's CDN answers 403 "error code: 1010" to bare clients.
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        transport=transport,
        follow_redirects=False,
        # An idle connection is dropped before any common server's keep-alive timeout
        # (uvicorn's is 5 s, httpx's default expiry too): a request written to a connection
        # the server is closing at that instant fails with no answer, and for a createTask
        # that means "maybe sent" — a job held for its callback instead of simply retried.
        limits=httpx.Limits(keepalive_expiry=2.0),
    )
