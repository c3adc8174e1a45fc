"""Runway through Kie's Runway endpoints: `POST /api/v1/runway/generate` (a flat body),
`GET /api/v1/runway/record-detail` with `state` wait | queueing | generating | success | fail
and the result in `videoInfo.videoUrl`."""

from __future__ import annotations

from typing import Any

from upstreams.base import State, TaskInfo, state_word, unknown_state, url_list
from upstreams.kie_http import KieFamily, reported_charge

STATES: dict[str, State] = {
    "wait": "waiting",
    "queueing": "queuing",
    "generating": "generating",
    "success": "success",
    "fail": "fail",
}


class KieRunway(KieFamily):
    name = "kie-runway"

    def create(self, model: str, input: dict[str, Any], callback_url: str | None) -> str:
        body: dict[str, Any] = dict(input)  # Runway's body names no model
        return self._submit("/api/v1/runway/generate", body, callback_url)

    def read(self, task_id: str) -> TaskInfo:
        data = self._http.read_task("/api/v1/runway/record-detail", task_id)
        return task_info(data) if data else TaskInfo(state="pending")


def task_info(data: dict[str, Any]) -> TaskInfo:
    word = state_word(data.get("state"))
    state = STATES.get(word) or unknown_state("kie-runway", word)
    if state == "success":
        raw = data.get("videoInfo")
        video: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return TaskInfo(
            state="success",
            progress=100,
            video_urls=url_list(video.get("videoUrl")),
            upstream_state=word,
            charge=reported_charge(data, "recordInfo"),
        )
    if state == "fail":
        return TaskInfo(
            state="fail",
            fail_code=str(data.get("failCode") or "")[:64],
            fail_msg=str(data.get("failMsg") or "Runway reported the generation failed.")[:1000],
            upstream_state=word,
        )
    return TaskInfo(state=state, upstream_state=word)
