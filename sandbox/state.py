"""What the sandbox's routers share: its settings, the tasks it made, the images it holds, the
calls it received, Kie's create window and the account — and the steps every API family's
create and read go through (auth, faults, the account, the schema, Kie's limits, one callback)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from core.config import parse_rate
from sandbox.account import Account
from sandbox.catalogue import LiveCatalogue
from sandbox.faults import Fault, parse
from sandbox.tasks import ACCOUNT_MESSAGES, Calls, SandboxConfig, Task, kie_body


@dataclass
class Sandbox:
    config: SandboxConfig
    tasks: dict[str, Task] = field(default_factory=dict)
    images: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # Kie's file uploads
    catalogue: LiveCatalogue = field(default_factory=LiveCatalogue.transcribed)
    calls: Calls = field(default_factory=Calls)
    created_at: deque[float] = field(default_factory=deque)  # accepted creates (rate limit)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    http: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    account: Account = field(default_factory=lambda: Account(0.0))
    # The bearer token of the `/_sandbox/` control routes (SANDBOX_CONTROL_TOKEN); unset, they
    # are closed: the call log holds prompts and callback URLs with their tokens.
    control_token: str = field(default_factory=lambda: os.environ.get("SANDBOX_CONTROL_TOKEN", ""))

    def __post_init__(self) -> None:
        self.account = Account(self.config.credits)

    def guard_control(self, request: Request) -> None:
        """A dependency of every `/_sandbox/` route: the holder of the token alone."""
        if not self.control_token:
            raise HTTPException(403, "the control routes are closed: set SANDBOX_CONTROL_TOKEN")
        given = request.headers.get("authorization", "").encode()
        if not secrets.compare_digest(given, f"Bearer {self.control_token}".encode()):
            raise HTTPException(
                401,
                "Authorization: Bearer <SANDBOX_CONTROL_TOKEN> is needed",
                {"WWW-Authenticate": "Bearer"},
            )

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.config.kie_key}"

    async def send_callback(self, task: Task) -> None:
        await asyncio.sleep(task.duration + self.config.callback_delay)
        self.settle(task)
        task.remained = self.account.credits
        payload = task.callback_body(time.time())
        status: int | str
        try:
            response = await self.http["client"].post(task.callback_url or "", json=payload)
            status = response.status_code
        except httpx.HTTPError as exc:
            status = f"error: {type(exc).__name__}"
        task.callback_sent = True
        self.calls.record("callback", task_id=task.id, status_code=status)

    def settle(self, task: Task) -> None:
        """A failed generation gives its credits back (once)."""
        if task.charged and task.stage(time.time())[0] == "fail":
            self.account.refund(task.charged)
            task.charged = 0.0

    async def create(
        self,
        request: Request,
        family: str,
        model: str,
        prompt: str,
        body: dict[str, Any],
        check: Any,
        shown: dict[str, Any],
    ) -> Response:
        """A create call of any family: auth, faults, the account switch, the schema, Kie's
        limits, then a task that moves by the clock (and one callback)."""
        attempt = self.calls.create_by_prompt[prompt]
        self.calls.create_by_prompt[prompt] += 1
        faults = parse(prompt)

        def active(name: str) -> Fault | None:
            fault = next((f for f in faults if f.name == name), None)
            if fault and (fault.times is None or attempt < fault.times):
                return fault
            return None

        def answer(code: int, msg: str, data: Any = None, **kwargs: Any) -> Response:
            self.calls.record(
                "createTask",
                family=family,
                prompt=prompt,
                code=code,
                msg=msg,
                model=model,
                input=shown,
                callback_url=body.get("callBackUrl"),
                task_id=(data or {}).get("taskId"),
            )
            return JSONResponse(kie_body(code, msg, data), **kwargs)

        if not self.authorized(request):
            return answer(401, "You do not have access permissions")
        if self.config.account_code:
            return answer(
                self.config.account_code, ACCOUNT_MESSAGES.get(self.config.account_code, "Error")
            )
        if fault := active("code"):
            headers = {"Retry-After": "1"} if fault.code == 429 else None
            messages = {
                **ACCOUNT_MESSAGES,
                429: "Rate limited",
                500: "Internal Error",
                455: "Maintenance",
            }
            return answer(
                fault.code or 500, messages.get(fault.code or 500, "Error"), headers=headers
            )
        if fault := active("http"):
            self.calls.record("createTask", family=family, prompt=prompt, code=fault.code)
            return PlainTextResponse("<html>error</html>", status_code=fault.code or 500)
        if active("hang"):
            await asyncio.sleep(self.config.hang_seconds)
        if active("malformed"):
            self.calls.record("createTask", family=family, prompt=prompt, code="malformed")
            return PlainTextResponse(
                '{"code": 200, "data": {"taskId": ', media_type="application/json"
            )
        refused = check()
        if refused is not None:
            return answer(*refused)
        now = time.time()
        if self.config.create_rate:
            rate = parse_rate(self.config.create_rate)
            while self.created_at and self.created_at[0] <= now - rate.window:
                self.created_at.popleft()
            if len(self.created_at) >= rate.count:
                return answer(429, f"Rate limit: {self.config.create_rate} new tasks")
        if (
            self.config.max_concurrent
            and sum(1 for t in self.tasks.values() if not t.finished(now))
            >= self.config.max_concurrent
        ):
            return answer(429, f"Too many concurrent tasks (max {self.config.max_concurrent})")
        cost = self.catalogue.price(family, model, body if family != "jobs" else shown)
        if cost is None:
            return answer(422, f"No price for model {model}")
        if not self.account.charge(cost):
            return answer(402, ACCOUNT_MESSAGES[402])
        self.created_at.append(now)
        slow = active("slow")
        prefix = {"veo": "veo_task", "runway": "runway_task"}.get(family, "task")
        task = Task(
            id=f"{prefix}_{model.replace('/', '-')}_{int(now * 1000)}{secrets.token_hex(3)}",
            model=model,
            prompt=prompt,
            param=body,
            created=time.time(),
            duration=slow.value if slow and slow.value is not None else self.config.duration,
            faults=faults,
            callback_url=body.get("callBackUrl"),
            base_url=str(request.base_url),
            family=family,
            charged=cost,
        )
        self.tasks[task.id] = task
        if task.callback_url and not task.has("nocallback") and not task.has("stuck"):
            pending = asyncio.create_task(self.send_callback(task))
            self.background.add(pending)
            pending.add_done_callback(self.background.discard)
        if active("lostreply"):
            # Kie made the task (and will call back), but its answer never arrives whole.
            self.calls.record(
                "createTask", family=family, prompt=prompt, code="lostreply", task_id=task.id
            )
            return PlainTextResponse(
                '{"code": 200, "data": {"taskId', media_type="application/json"
            )
        if delay := active("createdelay"):
            # Kie has the task; its answer is slow to come back (a client may give up first).
            self.calls.record("createTask.created", prompt=prompt, task_id=task.id)
            await asyncio.sleep(delay.value or 1.0)
        return answer(200, "success", {"taskId": task.id})

    async def json_body(self, request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def read(
        self, request: Request, family: str, task_id: str
    ) -> tuple[Task | None, Response | None]:
        """The common part of every family's read: auth, lookup, injected check faults."""

        def answer(code: int, msg: str) -> Response:
            self.calls.record("recordInfo", family=family, task_id=task_id, code=code)
            return JSONResponse(kie_body(code, msg))

        if not self.authorized(request):
            return None, answer(401, "You do not have access permissions")
        if not task_id:
            return None, answer(400, "taskId is required")
        task = self.tasks.get(task_id)
        if task is None:
            return None, answer(404, "task not found")
        task.record_calls += 1
        fault = task.has("checkfail")
        if fault and task.record_calls <= (fault.times or 10**9):
            return None, answer(fault.code or 500, "Internal Error")
        if time.time() - task.created < self.config.null_window:
            # Right after creation the task is not visible yet: the jobs API and Runway say
            # "recordInfo is null" (422); Veo answers 404.
            if family == "veo":
                return None, answer(404, "task not found")
            return None, answer(422, "recordInfo is null")
        self.calls.record("recordInfo", family=family, task_id=task_id, code=200)
        return task, None
