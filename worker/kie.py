"""Kie.ai jobs API client: createTask and recordInfo, with every documented quirk absorbed.

Kie often answers HTTP 200 with the error in the body (`{"code": 402, "msg": ...}`), so the
body's `code` decides, not only the HTTP status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from worker.errors import ExternalError, from_transport_error, parse_retry_after
from worker.http import make_client

# body code -> (error.code, retryable)
_CODES: dict[int, tuple[str, bool]] = {
    400: ("kie_bad_request", False),
    401: ("kie_unauthorized", False),
    402: ("kie_insufficient_credits", False),
    404: ("kie_not_found", False),
    422: ("kie_invalid_request", False),
    429: ("kie_rate_limited", True),
    433: ("kie_key_limit", False),
    455: ("kie_maintenance", True),
    500: ("kie_server_error", True),
    501: ("kie_generation_failed", False),
    505: ("kie_feature_disabled", False),
}
# HTTP statuses of a proxy in front of Kie that prove the request never reached it.
_NOT_DELIVERED = {429, 502, 503}

PENDING_STATES = ("waiting", "queuing", "generating")


@dataclass(frozen=True)
class TaskInfo:
    state: str  # waiting | queuing | generating | success | fail | pending (not visible yet)
    progress: int | None = None
    video_urls: list[str] = field(default_factory=list)
    watermarked_video_urls: list[str] = field(default_factory=list)
    fail_code: str = ""
    fail_msg: str = ""


class KieClient:
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

    def close(self) -> None:
        self._http.close()

    def create_task(self, model: str, input: dict[str, Any], callback_url: str | None) -> str:
        body: dict[str, Any] = {"model": model, "input": input}
        if callback_url:
            body["callBackUrl"] = callback_url
        data = self._call("POST", "/api/v1/jobs/createTask", json=body)
        task_id = (data or {}).get("taskId")
        if not task_id:
            # Kie said 200 but gave no id: a task may exist that we cannot name.
            raise ExternalError(
                "kie_bad_response",
                "createTask answered without a taskId",
                retryable=False,
                maybe_sent=True,
            )
        return str(task_id)

    def record_info(self, task_id: str) -> TaskInfo:
        try:
            data = self._call("GET", "/api/v1/jobs/recordInfo", params={"taskId": task_id})
        except ExternalError as exc:
            # Right after creation Kie answers 422 "recordInfo is null": the task is not
            # visible yet. The caller decides how long that may last.
            if exc.code == "kie_invalid_request" and "null" in exc.message.lower():
                return TaskInfo(state="pending")
            raise
        if not data:
            return TaskInfo(state="pending")
        return _task_info(data)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
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
        code = _as_int(body.get("code"))
        message = str(body.get("msg") or body.get("message") or "")
        if code == 200 and response.is_success:
            data = body.get("data")
            return data if isinstance(data, dict) else None
        if code == 200:  # an HTTP error with a "success" body: trust the HTTP status
            code = response.status_code
        error_code, retryable = _CODES.get(
            code, ("kie_server_error", True) if code >= 500 else ("kie_error", False)
        )
        # A definite answer from Kie: whatever it refused, it did not act on.
        raise ExternalError(
            error_code,
            message or f"Kie answered code {code}",
            retryable=retryable,
            retry_after=retry_after,
        )


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


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


def _task_info(data: dict[str, Any]) -> TaskInfo:
    state = str(data.get("state") or "").lower()
    progress = data.get("progress")
    info = TaskInfo(
        state=state if state in (*PENDING_STATES, "success", "fail") else "pending",
        progress=max(0, min(100, int(progress))) if isinstance(progress, int | float) else None,
        fail_code=str(data.get("failCode") or ""),
        fail_msg=str(data.get("failMsg") or ""),
    )
    if state != "success":
        return info
    result = data.get("resultJson")
    if isinstance(result, str):  # a JSON-encoded string, per the docs
        try:
            result = json.loads(result) if result else {}
        except ValueError:
            result = {}
    result = result if isinstance(result, dict) else {}
    return TaskInfo(
        state="success",
        progress=100,
        video_urls=[str(u) for u in result.get("resultUrls") or []],
        watermarked_video_urls=[str(u) for u in result.get("resultWaterMarkUrls") or []],
    )
