"""Kie's HTTP envelope, shared by every Kie API family: `{"code", "msg", "data"}`.

Kie often answers HTTP 200 with the error in the body (`{"code": 402, "msg": ...}`), so the
body's `code` decides, not only the HTTP status. Which codes are facts about the account (bad
key, no credits, sub-key limit) rather than about one job is decided here too.
"""

from __future__ import annotations

from typing import Any

import httpx

from upstreams.base import as_int
from upstreams.errors import ExternalError, from_transport_error, parse_retry_after
from upstreams.http import make_client

# body code -> (error.code, retryable)
CODES: dict[int, tuple[str, bool]] = {
    400: ("kie_bad_request", False),
    401: ("kie_unauthorized", False),
    402: ("kie_insufficient_credits", False),
    404: ("kie_not_found", False),
    422: ("kie_invalid_request", False),
    429: ("kie_rate_limited", True),
    433: ("kie_key_limit", False),
    451: ("kie_content_blocked", False),
    455: ("kie_maintenance", True),
    500: ("kie_server_error", True),
    501: ("kie_generation_failed", False),
    505: ("kie_feature_disabled", False),
}
# Facts about the account, not the job: they pause admission for everyone (worker.account).
ACCOUNT_CODES = frozenset({"kie_unauthorized", "kie_insufficient_credits", "kie_key_limit"})
# HTTP statuses of a proxy in front of Kie that prove the request never reached it.
_NOT_DELIVERED = {429, 502, 503}


class KieHTTP:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = make_client(
            base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """The body's `data` object (None when absent), or ExternalError."""
        data = self.call_any(method, path, **kwargs)
        return data if isinstance(data, dict) else None

    def read_task(self, path: str, task_id: str) -> dict[str, Any] | None:
        """A family's read call; None while the task is not visible yet (Kie answers
        "recordInfo is null" or a 404 right after creation — the pipeline decides how long
        that may last)."""
        try:
            return self.call("GET", path, params={"taskId": task_id}) or None
        except ExternalError as exc:
            if exc.code == "kie_not_found" or (
                exc.code == "kie_invalid_request" and "null" in exc.message.lower()
            ):
                return None
            raise

    def fresh_download_url(self, url: str) -> str | None:
        """Kie's `common/download-url`: a fresh 20-minute link for a file Kie generated."""
        data = self.call_any("POST", "/api/v1/common/download-url", json={"url": url})
        return data if isinstance(data, str) and data.startswith(("https://", "http://")) else None

    def credit_balance(self) -> float:
        """The account's balance in credits (`GET /api/v1/chat/credit`), or ExternalError."""
        value = credit_amount(self.call_any("GET", "/api/v1/chat/credit"))
        if value is None:
            raise ExternalError(
                "kie_bad_response", "Kie's balance was not a number", retryable=True
            )
        return value

    def call_any(self, method: str, path: str, **kwargs: Any) -> Any:
        """The body's `data`, whatever its type, or ExternalError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise from_transport_error("kie", exc) from exc
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "code" not in body:
            raise _unreadable(response, retry_after)
        code = as_int(body.get("code"))
        message = str(body.get("msg") or body.get("message") or "")[:500]
        if code == 200 and response.is_success:
            return body.get("data")
        if code == 200:  # an HTTP error with a "success" body: trust the HTTP status
            code = response.status_code
        error_code, retryable = CODES.get(
            code, ("kie_server_error", True) if code >= 500 else ("kie_error", False)
        )
        if code == 500 and "required" in message.lower():
            # Kie answers a missing field with 500 "This field is required": not transient.
            error_code, retryable = "kie_invalid_request", False
        # A definite answer from Kie: whatever it refused, it did not act on.
        raise ExternalError(
            error_code,
            message or f"Kie answered code {code}",
            retryable=retryable,
            retry_after=retry_after,
        )


def _unreadable(response: httpx.Response, retry_after: float | None) -> ExternalError:
    status = response.status_code
    if status == 403:
        return ExternalError(
            "kie_forbidden",
            f"Kie's CDN refused the request: {response.text[:200]}",
            retryable=False,
        )
    if status == 429:
        return ExternalError(
            "kie_rate_limited", "HTTP 429", retryable=True, retry_after=retry_after
        )
    # A 200 with garbage, or a 500/504, may come after Kie acted on the request.
    return ExternalError(
        "kie_bad_response",
        f"HTTP {status} with an unreadable body",
        retryable=True,
        maybe_sent=status not in _NOT_DELIVERED,
        retry_after=retry_after,
    )


def task_id_or_unknown(data: dict[str, Any] | None) -> str:
    task_id = (data or {}).get("taskId")
    if not task_id or not isinstance(task_id, str | int):
        # Kie said 200 but gave no id: a task may exist that we cannot name.
        raise ExternalError(
            "kie_bad_response",
            "the create call answered without a taskId",
            retryable=False,
            maybe_sent=True,
        )
    return str(task_id)[:200]


def callback_task_id(payload: Any) -> str | None:
    """Where the task id is differs between Kie's pages: taskId, data.taskId, data.task_id."""
    if not isinstance(payload, dict):
        return None
    raw = payload.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for value in (payload.get("taskId"), data.get("taskId"), data.get("task_id")):
        if isinstance(value, str) and value:
            return value[:200]
    return None


MAX_CREDITS = 1e9  # more than any account holds: a larger figure is not believed


def credit_amount(value: Any) -> float | None:
    """A credit figure Kie sent (a number, or a numeric string), if it is a sane one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip()[:32])
        except ValueError:
            return None
    if not isinstance(value, int | float) or value != value or not 0 <= value <= MAX_CREDITS:
        return None  # NaN, negative, infinite or absurd
    return round(float(value), 2)


# Where Kie puts what a task cost: its docs and public clients show `creditsConsumed` (in
# recordInfo and callbacks), some pages `consumeCredits`. Both are read, in this order.
CHARGE_FIELDS = ("creditsConsumed", "consumeCredits")


def _fields(payload: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(payload, dict):
        return ()
    raw = payload.get("data")
    return (payload, raw) if isinstance(raw, dict) else (payload,)


def reported_charge(payload: Any, where: str) -> tuple[float, str] | None:
    """(credits, "<where>.<field>") for the charge a recordInfo `data` or a callback body
    reports, top level or under `data`; None when it reports none (or an absurd one)."""
    for name in CHARGE_FIELDS:
        for source in _fields(payload):
            if name in source:
                credits = credit_amount(source[name])
                if credits is not None:
                    return credits, f"{where}.{name}"
    return None


def callback_credits(payload: Any) -> tuple[tuple[float, str] | None, float | None]:
    """A completion callback's charge (as reported_charge) and remainedCredits."""
    remaining = next(
        (credit_amount(s["remainedCredits"]) for s in _fields(payload) if "remainedCredits" in s),
        None,
    )
    return reported_charge(payload, "callback"), remaining


class KieFamily:
    """What every Kie API family shares: the envelope client, the create call's shape (a
    body plus callBackUrl, answered with `data.taskId`) and where callbacks name the task."""

    name = ""

    def __init__(self, http: KieHTTP) -> None:
        self._http = http

    def callback_task_id(self, payload: Any) -> str | None:
        return callback_task_id(payload)

    def _submit(self, path: str, body: dict[str, Any], callback_url: str | None) -> str:
        if callback_url:
            body = {**body, "callBackUrl": callback_url}
        return task_id_or_unknown(self._http.call("POST", path, json=body))
