from __future__ import annotations

import httpx

USER_AGENT = "soraq/0.1 (+https://github.com/soraq/soraq)"


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
    )
