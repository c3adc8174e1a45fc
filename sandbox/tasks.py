"""The sandbox's tasks and settings: a task moves through waiting → queuing → generating (with
progress) → success by the clock, and shows itself in each Kie API family's own shape."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from core.config import SANDBOX_IMGBB_KEY, SANDBOX_KIE_KEY
from sandbox.faults import Fault

ACCOUNT_MESSAGES = {
    401: "You do not have access permissions",
    402: "The current credits are insufficient. Please top up.",
    433: "The sub-key usage limit has been reached",
}
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


@dataclass
class SandboxConfig:
    duration: float = 0.5  # seconds a task takes to generate
    null_window: float = 0.2  # seconds recordInfo answers "recordInfo is null" after creation
    hang_seconds: float = 40.0  # how long [kie:hang] keeps createTask waiting
    callback_delay: float = 0.0
    veo_1080p_delay: float = 1.0  # seconds after success until get-1080p-video has the file
    create_rate: str = ""  # like Kie: "20/10s" new tasks per window, excess refused (429)
    max_concurrent: int = 0  # tasks generating at once; 0: no limit
    # Nonzero: every create call answers this code (401 bad key, 402 no credits, 433 sub-key
    # limit), as Kie does for an account in that state; 0 again: topped up.
    account_code: int = 0
    # The account's balance (SANDBOX_CREDITS); each accepted create draws its price from it,
    # and a create it cannot cover is refused with 402 like Kie's.
    credits: float = 10_000_000.0
    kie_key: str = SANDBOX_KIE_KEY
    imgbb_key: str = SANDBOX_IMGBB_KEY

    @classmethod
    def from_env(cls) -> SandboxConfig:
        config = cls()
        for name in (
            "duration",
            "null_window",
            "hang_seconds",
            "callback_delay",
            "veo_1080p_delay",
            "credits",
        ):
            if value := os.environ.get(f"SANDBOX_{name.upper()}"):
                setattr(config, name, float(value))
        config.create_rate = os.environ.get("SANDBOX_CREATE_RATE", "")
        config.max_concurrent = int(os.environ.get("SANDBOX_MAX_CONCURRENT", "0"))
        # Another account's key (a second sandbox standing in for a second account).
        config.kie_key = os.environ.get("SANDBOX_ACCOUNT_KEY") or config.kie_key
        return config


@dataclass
class Task:
    id: str
    model: str
    prompt: str
    param: dict[str, Any]
    created: float
    duration: float
    faults: list[Fault]
    callback_url: str | None
    base_url: str
    family: str = "jobs"  # jobs | veo | runway: which Kie API family created it
    record_calls: int = 0
    callback_sent: bool = False
    charged: float = 0.0  # credits the create drew (refunded if the generation fails)
    remained: float = 0.0  # the balance when the callback is sent

    def finished(self, now: float) -> bool:
        return not self.has("stuck") and now - self.created >= self.duration

    def has(self, name: str) -> Fault | None:
        return next((f for f in self.faults if f.name == name), None)

    def stage(self, now: float) -> tuple[str, int]:
        """(neutral state, progress) by the clock: waiting → queuing → generating → end."""
        elapsed = now - self.created
        if self.has("stuck"):
            return "generating", min(99, int(elapsed))
        if elapsed >= self.duration:
            return ("fail" if self.has("fail") else "success"), 100
        if elapsed < self.duration * 0.1:
            return "waiting", 0
        if elapsed < self.duration * 0.25:
            return "queuing", 0
        return "generating", int(100 * elapsed / self.duration)

    def record_time(self, now: float) -> float:
        """The clock the read endpoints show the task by: [kie:lag=N] makes the record trail
        the callback by N seconds (Kie's record can lag its own callback)."""
        lag = self.has("lag")
        return now - (lag.value or 0.0) if lag else now

    def charge_field(self) -> str:
        """Which name this task reports its charge under: Kie's docs show creditsConsumed,
        some pages consumeCredits ([kie:charge=consumeCredits])."""
        chosen = self.has("charge")
        return chosen.text if chosen and chosen.text in ("consumeCredits",) else "creditsConsumed"

    def charge(self, state: str) -> dict[str, float]:
        """The charge as the read endpoints and callbacks show it once the task ended."""
        if state not in ("success", "fail"):
            return {}
        return {self.charge_field(): 0 if state == "fail" else self.charged}

    def video_url(self, watermarked: bool = False) -> str:
        # [kie:inside]: a hostile or broken upstream hands out an address inside our network.
        base = "http://10.0.0.7/" if self.has("inside") else self.base_url
        return f"{base}v/{self.id}{'-wm' if watermarked else ''}.mp4"

    def view(self, now: float) -> dict[str, Any]:
        """The task as the jobs API's recordInfo shows it."""
        state, progress = self.stage(now)
        odd = self.has("state")
        if odd and odd.text and state not in ("success", "fail"):
            state = odd.text  # a state word soraq does not know
        ms = int(self.created * 1000)
        data: dict[str, Any] = {
            "taskId": self.id,
            "model": self.model,
            "state": state,
            "param": json.dumps(self.param),
            "resultJson": "",
            "failCode": "",
            "failMsg": "",
            "costTime": None,
            "progress": progress,
            "completeTime": None,
            "createTime": ms,
            "updateTime": int(now * 1000),
        }
        if state == "success":
            data["resultJson"] = json.dumps(
                {"resultUrls": [self.video_url()], "resultWaterMarkUrls": [self.video_url(True)]}
            )
        if state == "fail":
            data.update(
                failCode="content_policy", failMsg="The prompt was flagged by the content policy."
            )
        if state in ("success", "fail"):
            data.update(
                costTime=int(self.duration * 1000), completeTime=ms + int(self.duration * 1000)
            )
        data.update(self.charge(state))
        return data

    def veo_view(self, now: float) -> dict[str, Any]:
        """The task as Veo's record-info shows it: successFlag, string times, no progress."""
        state, _ = self.stage(now)
        odd = self.has("state")
        flag: Any = {"success": 1, "fail": 3}.get(state, 0)
        if odd and odd.text and state not in ("success", "fail"):
            flag = odd.text
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.created))
        return {
            "taskId": self.id,
            "paramJson": json.dumps(self.param),
            "createTime": stamp,
            "completeTime": stamp if state in ("success", "fail") else None,
            "response": {
                "taskId": self.id,
                "resultUrls": [self.video_url()],
                "originUrls": [self.video_url()],
                # Veo finishes in 720p; 1080p comes from get-1080p-video a while later.
                "resolution": "720p",
            }
            if state == "success"
            else None,
            "successFlag": flag,
            "errorCode": 400 if state == "fail" else None,
            "errorMessage": "The prompt was flagged by the content policy."
            if state == "fail"
            else "",
            "fallbackFlag": False,
            **self.charge(state),
        }

    def runway_view(self, now: float) -> dict[str, Any]:
        state, _ = self.stage(now)
        word = {"waiting": "wait", "queuing": "queueing"}.get(state, state)
        odd = self.has("state")
        if odd and odd.text and state not in ("success", "fail"):
            word = odd.text
        return {
            "taskId": self.id,
            "state": word,
            "generateParam": self.param,
            "videoInfo": {
                "videoId": self.id,
                "videoUrl": self.video_url(),
                "imageUrl": f"{self.base_url}v/{self.id}.jpg",
            }
            if state == "success"
            else None,
            "failCode": 400 if state == "fail" else None,
            "failMsg": "The prompt was flagged by the content policy." if state == "fail" else "",
            "generateTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.created)),
            **self.charge(state),
        }

    def callback_body(self, now: float) -> dict[str, Any]:
        state, _ = self.stage(now)
        failed = state == "fail"
        if self.family == "veo":
            info = {"resultUrls": [self.video_url()], "originUrls": [self.video_url()]}
            return {
                "code": 501 if failed else 200,
                "msg": "generation failed" if failed else "Veo3.1 video generated successfully.",
                "data": {"taskId": self.id, "info": None if failed else info, **self.charge(state)},
            }
        if self.family == "runway":
            return {
                "code": 501 if failed else 200,
                "msg": "generation failed" if failed else "success",
                "data": {
                    "task_id": self.id,
                    "video_id": self.id,
                    "video_url": "" if failed else self.video_url(),
                    "image_url": "",
                    **self.charge(state),
                },
            }
        data = self.view(now)  # the charge included, under this task's name for it
        return {
            "code": 501 if failed else 200,
            "msg": data["failMsg"] if failed else "success",
            "data": {**data, "remainedCredits": self.remained},
        }


@dataclass
class Calls:
    log: list[dict[str, Any]] = field(default_factory=list)
    create_by_prompt: Counter[str] = field(default_factory=Counter)

    def record(self, endpoint: str, **details: Any) -> None:
        self.log.append({"endpoint": endpoint, "at": time.time(), **details})


async def _trickled(data: bytes, seconds: float) -> AsyncIterator[bytes]:
    """`data` spread over `seconds` (a slow CDN), in 20 pieces."""
    step = max(1, len(data) // 20)
    for start in range(0, len(data), step):
        yield data[start : start + step]
        await asyncio.sleep(seconds / 20)


def kie_body(code: int, msg: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def imgbb_error(status: int, message: str, code: int | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    return JSONResponse(
        {"status_code": status, "error": error, "status_txt": "Bad Request"}, status
    )
