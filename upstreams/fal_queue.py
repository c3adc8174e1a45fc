"""fal.ai's queue API: one adapter for every model fal serves (catalogue.fal maps soraq's
models to fal's endpoints and fields).

- submit: `POST {base}/{endpoint_id}[?fal_webhook=URL]` with the model's own input as the
  body, `Authorization: Key …` → `{"request_id", …}`;
- status: `GET {base}/{owner}/{app}/requests/{id}/status` → IN_QUEUE (queue_position),
  IN_PROGRESS, COMPLETED — the *app* path only: fal's status and result URLs leave out the
  endpoint's sub-path (`fal-ai/veo3.1/fast` → `fal-ai/veo3.1`);
- result: `GET {base}/{owner}/{app}/requests/{id}` → the model's output (`{"video": {"url"}}`),
  or an HTTP error with `{"detail": …}` when the request failed;
- errors are HTTP statuses with `{"detail": …}`: 401 bad key, 403 a locked user (an exhausted
  balance among the reasons), 422 an input the model refuses, 429 too many requests.

soraq's task id for a fal request is `fal:{owner}/{app}:{request_id}`, so that a read needs
nothing but the id (the same column holds Kie's ids; the prefix keeps them apart).
"""

from __future__ import annotations

from typing import Any

import httpx

from upstreams.base import TaskInfo, state_word, unknown_state
from upstreams.errors import ExternalError, from_transport_error, parse_retry_after
from upstreams.http import make_client

FAL = "fal"  # the family name: metrics, history, UpstreamClients.upstreams
PREFIX = "fal:"
# Facts about the account, not the job (worker.account pauses the account's admission).
ACCOUNT_CODES = frozenset({"fal_unauthorized", "fal_insufficient_credits", "fal_forbidden"})
_NOT_DELIVERED = {429, 502, 503}  # a proxy's refusal: the request never reached the queue
MAX_DETAIL = 500


def app_of(endpoint: str) -> str:
    """`fal-ai/veo3.1/fast` → `fal-ai/veo3.1`: the part fal's queue URLs use."""
    return "/".join(endpoint.strip("/").split("/")[:2])


def task_id_of(endpoint: str, request_id: str) -> str:
    return f"{PREFIX}{app_of(endpoint)}:{request_id}"


def split_task_id(task_id: str) -> tuple[str, str]:
    """(app, request_id) of a soraq task id for fal; ExternalError for one that is not."""
    app, _, request_id = task_id.removeprefix(PREFIX).rpartition(":")
    if not task_id.startswith(PREFIX) or app.count("/") != 1 or not request_id:
        raise ExternalError(
            "fal_bad_task_id", f"not a fal task id: {task_id[:80]}", retryable=False
        )
    return app, request_id


def _detail(body: Any) -> str:
    """fal's error text: `detail` is a string, or a list of pydantic-style errors."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc") or [] if p != "body")
                parts.append(f"{where}: {item.get('msg', '')}".strip(": "))
        detail = "; ".join(parts)
    return " ".join(str(detail or "").split())[:MAX_DETAIL]


def error_of(response: httpx.Response) -> ExternalError:
    """An HTTP error from fal, mapped to soraq's codes."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = _detail(body) or f"fal answered HTTP {status}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 401:
        return ExternalError("fal_unauthorized", detail, retryable=False)
    if status in (402, 403):
        lowered = detail.lower()
        broke = status == 402 or "balance" in lowered or "credit" in lowered
        code = "fal_insufficient_credits" if broke else "fal_forbidden"
        return ExternalError(code, detail, retryable=False)
    if status == 404:
        return ExternalError("fal_not_found", detail, retryable=False)
    if status in (400, 422):
        return ExternalError("fal_invalid_request", detail, retryable=False)
    if status == 429:
        return ExternalError("fal_rate_limited", detail, retryable=True, retry_after=retry_after)
    # A 5xx, or anything else: the request may have been queued before the error.
    return ExternalError(
        "fal_server_error",
        detail,
        retryable=True,
        maybe_sent=status not in _NOT_DELIVERED,
        retry_after=retry_after,
    )


class FalQueue:
    name = FAL

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
            headers={"Authorization": f"Key {api_key}"},
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise from_transport_error("fal", exc) from exc
        if not response.is_success:
            raise error_of(response)
        try:
            return response.json()
        except ValueError:
            raise ExternalError(
                "fal_bad_response",
                f"HTTP {response.status_code} with an unreadable body",
                retryable=True,
                maybe_sent=True,
            ) from None

    def create(self, model: str, input: dict[str, Any], callback_url: str | None) -> str:
        params = {"fal_webhook": callback_url} if callback_url else None
        body = self._call("POST", f"/{model.strip('/')}", json=input, params=params)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id or len(request_id) > 100:
            # fal said yes but named no request: one may exist that we cannot name.
            raise ExternalError(
                "fal_bad_response",
                "the submit call answered without a request_id",
                retryable=False,
                maybe_sent=True,
            )
        return task_id_of(model, request_id)

    def read(self, task_id: str) -> TaskInfo:
        app, request_id = split_task_id(task_id)
        try:
            status = self._call("GET", f"/{app}/requests/{request_id}/status")
        except ExternalError as exc:
            if exc.code == "fal_not_found":
                return TaskInfo(state="pending")  # not visible yet: the pipeline decides
            raise
        word = state_word(status.get("status") if isinstance(status, dict) else None)
        if word == "in_queue":
            return TaskInfo(state="queuing", upstream_state=word)
        if word == "in_progress":
            return TaskInfo(state="generating", upstream_state=word)
        if word != "completed":
            return TaskInfo(state=unknown_state(self.name, word), upstream_state=word)
        return self._result(app, request_id)

    def _result(self, app: str, request_id: str) -> TaskInfo:
        try:
            output = self._call("GET", f"/{app}/requests/{request_id}")
        except ExternalError as exc:
            if exc.retryable or exc.code == "fal_not_found":
                raise
            # A completed request whose result is an error: the generation failed.
            return TaskInfo(
                state="fail", fail_code=exc.code, fail_msg=exc.message, upstream_state="completed"
            )
        urls = video_urls(output)
        if not urls:
            return TaskInfo(
                state="fail",
                fail_code="fal_no_video",
                fail_msg="fal's result named no video",
                upstream_state="completed",
            )
        return TaskInfo(state="success", progress=100, video_urls=urls, upstream_state="completed")

    def cancel(self, task_id: str) -> str:
        """Ask fal to drop a request it has not started (fal bills what it runs): its answer,
        `cancellation_requested` or `already_completed` (too late: nothing to save)."""
        app, request_id = split_task_id(task_id)
        try:
            response = self._http.put(f"/{app}/requests/{request_id}/cancel")
        except httpx.TransportError as exc:
            raise from_transport_error("fal", exc) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        word = state_word(body.get("status") if isinstance(body, dict) else None)
        if response.status_code in (200, 202) or word == "already_completed":
            return word or "cancellation_requested"
        raise error_of(response)

    def callback_task_id(self, payload: Any) -> str | None:
        """The request id a fal webhook names (its task id is `fal:{app}:{request_id}`)."""
        if not isinstance(payload, dict):
            return None
        value = payload.get("request_id")
        return value[:100] if isinstance(value, str) and value else None


def video_urls(output: Any) -> list[str]:
    """`{"video": {"url"}}` (or `videos: [...]`) of a fal result: http(s) URLs only."""
    if not isinstance(output, dict):
        return []
    many = output.get("videos")
    items: list[Any] = many if isinstance(many, list) else [output.get("video")]
    urls = []
    for item in items[:10]:
        url = item.get("url") if isinstance(item, dict) else None
        if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
            urls.append(url[:2048])
    return urls


def is_fal_task(task_id: str) -> bool:
    return task_id.startswith(PREFIX)


def family_of(task_id: str, family: str) -> str:
    """The family that reads a task: fal's for a fal task id, else the model's own."""
    return FAL if is_fal_task(task_id) else family
