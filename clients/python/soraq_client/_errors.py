from __future__ import annotations

from typing import Any

import httpx


class SoraqError(Exception):
    """An error answer from soraq: `status` is the HTTP status, `code` soraq's stable error
    code (e.g. `validation_error`, `budget_exceeded`), `fields` the request fields at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.retry_after = retry_after
        self.body = body or {}


class WebhookVerificationError(Exception):
    """A webhook whose signature, id or timestamp does not check out."""


def raise_for_error(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error", {}) if isinstance(body, dict) else {}
    retry_after = response.headers.get("retry-after")
    raise SoraqError(
        response.status_code,
        str(error.get("code") or "http_error"),
        str(error.get("message") or response.text[:300]),
        fields=error.get("fields"),
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        body=body if isinstance(body, dict) else None,
    )
