"""One webhook POST with an overall deadline.

httpx's timeouts bound each read, not the exchange: a receiver that trickles its headers or
body a byte at a time never trips them and holds a worker thread for as long as it likes. Each
delivery here runs on a short-lived event loop under `asyncio.timeout`, which cancels the whole
exchange — connect, TLS, request, status line, headers — at WEBHOOK_TIMEOUT. Only the status
and headers are needed: the body is never read (closing the response drops the connection).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from core.netguard import CheckedURL
from upstreams.errors import parse_retry_after
from upstreams.http import USER_AGENT, tls_context


@dataclass(frozen=True)
class Answer:
    status: int | None
    retry_after: float | None = None
    error: str | None = None


def post_event(
    checked: CheckedURL,
    event_id: str,
    stamp: int,
    body: str,
    signature: str,
    *,
    deadline: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Answer:
    """POST one signed Standard Webhooks event to the vetted address (`stamp` and
    `signature` are the ones the signature was made with)."""
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        "host": checked.host_header,
    }
    return post_within(
        httpx.URL(checked.pinned_url),
        body.encode(),
        headers,
        deadline=deadline,
        sni_hostname=checked.host,
        transport=transport,
    )


def post_within(
    url: httpx.URL,
    body: bytes,
    headers: dict[str, str],
    *,
    deadline: float,
    sni_hostname: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Answer:
    """POST `body`; the whole exchange ends within `deadline` seconds, whatever the peer does."""
    return asyncio.run(_post(url, body, headers, deadline, sni_hostname, transport))


async def _post(
    url: httpx.URL,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    sni_hostname: str,
    transport: httpx.AsyncBaseTransport | None,
) -> Answer:
    try:
        async with asyncio.timeout(deadline):
            async with (
                httpx.AsyncClient(
                    verify=tls_context(),
                    timeout=deadline,
                    follow_redirects=False,  # a receiver must not bounce a signed event
                    transport=transport,
                    trust_env=False,
                ) as client,
                client.stream(
                    "POST",
                    url,
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": sni_hostname},
                ) as response,
            ):
                return Answer(
                    response.status_code, parse_retry_after(response.headers.get("retry-after"))
                )
    except TimeoutError:
        return Answer(None, error=f"no complete answer within {deadline:g} s (WEBHOOK_TIMEOUT)")
    except httpx.HTTPError as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:500])
