"""Signed content links: `/jobs/{id}/content?index=0&exp=…&sig=…` opens one file of one job
until `exp`, with no Authorization header, so `<video src>` and `<img src>` work in a
browser. Signed with a key derived from the server secret; re-signed on every read."""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import cache
from urllib.parse import urlencode

from core.config import Settings, get_settings
from core.server_secret import server_secret


@cache
def _key() -> bytes:
    return hmac.new(server_secret(get_settings()), b"soraq content links", hashlib.sha256).digest()


def _signature(job_id: str, kind: str, index: int, expires: int) -> str:
    message = f"{job_id}\0{kind}\0{index}\0{expires}".encode()
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()[:32]


def signed_path(
    job_id: str,
    kind: str,
    index: int,
    settings: Settings | None = None,
    ttl: float | None = None,
) -> str:
    """`kind` is "content" (the video) or "poster"; the link lasts `ttl` seconds (default
    CONTENT_URL_TTL)."""
    ttl = ttl if ttl is not None else (settings or get_settings()).content_url_ttl
    expires = int(time.time() + ttl)
    query = urlencode(
        {"index": index, "exp": expires, "sig": _signature(job_id, kind, index, expires)}
    )
    return f"/jobs/{job_id}/{kind}?{query}"


def valid(job_id: str, kind: str, index: int, expires: int, signature: str) -> bool:
    if expires < time.time():
        return False
    # Bytes, not str: compare_digest raises on a str with non-ASCII characters (a 500).
    expected = _signature(job_id, kind, index, expires).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape"))
