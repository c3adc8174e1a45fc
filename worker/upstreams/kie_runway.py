"""Runway through Kie's Runway endpoints: `POST /api/v1/runway/generate` (a flat body),
`GET /api/v1/runway/record-detail` with `state` wait | queueing | generating | success | fail
and the result in `videoInfo.videoUrl`."""

from __future__ import annotations

from typing import Any

from worker.upstreams.base import State, TaskInfo, unknown_state, url_list
from worker.upstreams.kie_http import KieHTTP, callback_task_id, task_id_or_unknown

STATES: dict[str, State] = {
    "wait": "waiting",
    "queueing": "queuing",
    "generating": "generating",
    "success": "success",
    "fail": "fail",
}


class KieRunway:
    name = "kie-runway"

    def __init__(self, http: KieHTTP) -> None:
        self._http = http

    def close(self) -> None:
        self._http.close()

    def create(self, model: str, input: dict[str, Any], callback_url: str | None) -> str:
        body: dict[str, Any] = dict(input)  # Runway's body names no model
        if callback_url:
            body["callBackUrl"] = callback_url
        return task_id_or_unknown(self._http.call("POST", "/api/v1/runway/generate", json=body))

    def read(self, task_id: str) -> TaskInfo:
        data = self._http.read_task("/api/v1/runway/record-detail", task_id)
        return task_info(data) if data else TaskInfo(state="pending")

    def callback_task_id(self, payload: Any) -> str | None:
        return callback_task_id(payload)


def task_info(data: dict[str, Any]) -> TaskInfo:
    word = str(data.get("state") or "").lower()
    state = STATES.get(word) or unknown_state("kie-runway", word)
    if state == "success":
        raw = data.get("videoInfo")
        video: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return TaskInfo(
            state="success",
            progress=100,
            video_urls=url_list(video.get("videoUrl")),
            upstream_state=word,
        )
    if state == "fail":
        return TaskInfo(
            state="fail",
            fail_code=str(data.get("failCode") or "")[:64],
            fail_msg=str(data.get("failMsg") or "Runway reported the generation failed.")[:1000],
            upstream_state=word,
        )
    return TaskInfo(state=state, upstream_state=word)
