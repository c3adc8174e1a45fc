"""imgbb upload client. Its errors come in another envelope than Kie's:
`{"status_code": 400, "error": {"message": ..., "code": 100}, "status_txt": ...}`.
"""

from __future__ import annotations

from typing import Any

import httpx

from upstreams.errors import ExternalError, from_transport_error, parse_retry_after
from upstreams.http import make_client

_INVALID_IMAGE_CODES = {310, 311}


class ImgbbClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        expiration: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = make_client(base_url, timeout=timeout, transport=transport)
        self._key = api_key
        self._expiration = expiration

    def upload(self, data: bytes, *, name: str, content_type: str) -> str:
        """Upload image bytes; returns the public URL. Uploads expire: Kie fetches them at once."""
        try:
            response = self._http.post(
                "/1/upload",
                # The key goes in the form body, not the query string, so no URL log shows it.
                data={"key": self._key, "expiration": str(self._expiration), "name": name},
                files={"image": (name, data, content_type)},
            )
        except httpx.TransportError as exc:
            raise from_transport_error("imgbb", exc) from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and body.get("success"):
            url = (body.get("data") or {}).get("url")
            if url:
                return str(url)
        raise _error(response, body)


def _error(response: httpx.Response, body: Any) -> ExternalError:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    error = body.get("error") if isinstance(body, dict) else None
    message = (
        str(error.get("message") if isinstance(error, dict) else "")
        or f"HTTP {response.status_code}"
    )
    code = error.get("code") if isinstance(error, dict) else None
    status = response.status_code
    if status == 429:
        return ExternalError("imgbb_rate_limited", message, retryable=True, retry_after=retry_after)
    if status >= 500 or body is None:
        return ExternalError("imgbb_server_error", message, retryable=True, retry_after=retry_after)
    if code == 100 or status in (401, 403):
        return ExternalError("imgbb_unauthorized", message, retryable=False)
    if code in _INVALID_IMAGE_CODES or "upload source" in message.lower():
        return ExternalError("imgbb_invalid_image", message, retryable=False)
    return ExternalError("imgbb_error", message, retryable=False)
