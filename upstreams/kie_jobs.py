"""Kie's market jobs API: `POST /api/v1/jobs/createTask`, `GET /api/v1/jobs/recordInfo`."""

from __future__ import annotations

import json
from typing import Any

from upstreams.base import State, TaskInfo, state_word, unknown_state, url_list
from upstreams.kie_http import KieFamily, reported_charge

STATES: dict[str, State] = {
    "waiting": "waiting",
    "queuing": "queuing",
    "generating": "generating",
    "success": "success",
    "fail": "fail",
}


class KieJobs(KieFamily):
    name = "kie-jobs"

    def create(self, model: str, input: dict[str, Any], callback_url: str | None) -> str:
        body: dict[str, Any] = {"model": model, "input": input}
        return self._submit("/api/v1/jobs/createTask", body, callback_url)

    def read(self, task_id: str) -> TaskInfo:
        data = self._http.read_task("/api/v1/jobs/recordInfo", task_id)
        return task_info(data) if data else TaskInfo(state="pending")


def task_info(data: dict[str, Any]) -> TaskInfo:
    word = state_word(data.get("state"))
    state = STATES.get(word) or unknown_state("kie-jobs", word)
    progress = data.get("progress")
    callback = _callback_url(data.get("param"))
    if state == "success":
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
            video_urls=url_list(result.get("resultUrls")),
            watermarked_video_urls=url_list(result.get("resultWaterMarkUrls")),
            upstream_state=word,
            callback_url=callback,
            charge=reported_charge(data, "recordInfo"),
        )
    return TaskInfo(
        state=state,
        progress=max(0, min(100, int(progress)))
        if isinstance(progress, int | float) and not isinstance(progress, bool)
        else None,
        fail_code=str(data.get("failCode") or "")[:64],
        fail_msg=str(data.get("failMsg") or "")[:1000],
        upstream_state=word,
        callback_url=callback,
    )


def _callback_url(param: Any) -> str | None:
    """recordInfo's `param` (a JSON string) echoes the create body, callBackUrl included."""
    if isinstance(param, str):
        try:
            param = json.loads(param)
        except ValueError:
            return None
    value = param.get("callBackUrl") if isinstance(param, dict) else None
    return value if isinstance(value, str) else None
