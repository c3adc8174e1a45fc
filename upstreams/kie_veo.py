"""Veo 3.1 through Kie's own Veo endpoints: a flat body (no `input`), `successFlag` states.

`POST /api/v1/veo/generate` → `data.taskId`; `GET /api/v1/veo/record-info?taskId=` →
`successFlag` 0 generating, 1 success (`response.resultUrls`), 2 failed, 3 generation failed;
times are strings; no progress. Callbacks carry `data.taskId` and `data.info.resultUrls`.
A 1080p request is done only when `get-1080p-video` hands out its file.
"""

from __future__ import annotations

import json
from typing import Any

from upstreams.base import State, TaskInfo, state_word, unknown_state, url_list
from upstreams.errors import ExternalError
from upstreams.kie_http import KieFamily, reported_charge

FLAGS: dict[int, State] = {0: "generating", 1: "success", 2: "fail", 3: "fail"}


class KieVeo(KieFamily):
    name = "kie-veo"

    def create(self, model: str, input: dict[str, Any], callback_url: str | None) -> str:
        body: dict[str, Any] = {**input, "model": model}
        return self._submit("/api/v1/veo/generate", body, callback_url)

    def read(self, task_id: str) -> TaskInfo:
        data = self._http.read_task("/api/v1/veo/record-info", task_id)
        if not data:
            return TaskInfo(state="pending")
        info = task_info(data)
        if info.state == "success" and _wants_1080p(data):
            return self._with_1080p(task_id, info)
        return info

    def _with_1080p(self, task_id: str, info: TaskInfo) -> TaskInfo:
        """Veo finishes in 720p; the 1080p file comes from get-1080p-video, which answers
        "not ready" for a minute or more after success. Until then the task is still working
        (a 1080p job is not done with a 720p file)."""
        try:
            data = self._http.call(
                "GET", "/api/v1/veo/get-1080p-video", params={"taskId": task_id, "index": 0}
            )
        except ExternalError as exc:
            if exc.retryable or exc.code in ("kie_invalid_request", "kie_not_found", "kie_error"):
                return TaskInfo(state="generating", progress=99, upstream_state="1080p not ready")
            raise
        urls = url_list((data or {}).get("resultUrl"))
        if not urls:
            return TaskInfo(state="generating", progress=99, upstream_state="1080p not ready")
        return TaskInfo(
            state="success",
            progress=100,
            video_urls=urls,
            upstream_state=info.upstream_state,
            callback_url=info.callback_url,
            charge=info.charge,
        )


def _wants_1080p(data: dict[str, Any]) -> bool:
    """Asked for 1080p (paramJson echoes the request) and not delivered in it yet."""
    try:
        param = json.loads(data.get("paramJson") or "{}")
    except (TypeError, ValueError):
        return False
    raw = data.get("response")
    response: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return (
        isinstance(param, dict)
        and param.get("resolution") == "1080p"
        and response.get("resolution") != "1080p"
    )


def task_info(data: dict[str, Any]) -> TaskInfo:
    flag = data.get("successFlag")
    word = state_word(flag)
    state = (
        FLAGS.get(flag) if isinstance(flag, int) and not isinstance(flag, bool) else None
    ) or unknown_state("kie-veo", word)
    callback: str | None = None
    try:
        param = json.loads(data.get("paramJson") or "{}")
        found = param.get("callBackUrl") if isinstance(param, dict) else None
        callback = found if isinstance(found, str) else None
    except (TypeError, ValueError):
        pass
    shown = f"successFlag={word}"
    if state == "success":
        raw = data.get("response")
        response: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return TaskInfo(
            state="success",
            progress=100,
            video_urls=url_list(response.get("resultUrls")),
            upstream_state=shown,
            callback_url=callback,
            charge=reported_charge(data, "recordInfo"),
        )
    if state == "fail":
        return TaskInfo(
            state="fail",
            fail_code=str(data.get("errorCode") or flag)[:64],
            fail_msg=str(data.get("errorMessage") or "Veo reported the generation failed.")[:1000],
            upstream_state=shown,
            callback_url=callback,
        )
    return TaskInfo(state=state, upstream_state=shown, callback_url=callback)
