"""`Soraq` and `AsyncSoraq`: the same calls, blocking or awaited.

Each call is built once (`_Call`: method, path, body, headers) and parsed once; the two
clients differ only in how they send it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from soraq_client._errors import SoraqError, raise_for_error
from soraq_client._sse import EventParser
from soraq_client.types import Batch, Event, Job, JobPage, Model

T = TypeVar("T", bound=BaseModel)
ImageInput = str | os.PathLike[str] | bytes | dict[str, Any]
MAX_WAIT = 60  # the server holds a request at most this long (Prefer: wait)
RECONNECT_DELAY = 1.0


@dataclass
class _Call(Generic[T]):
    method: str
    path: str
    parse: type[T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def _image(item: ImageInput) -> dict[str, Any]:
    """A URL stays a URL; a file or bytes travel as base64. A plain item is a first frame;
    pass {"role": "last_frame" | "reference", ...} for the others."""
    if isinstance(item, dict):
        return item
    if isinstance(item, bytes):
        return {"role": "first_frame", "base64": base64.b64encode(item).decode()}
    text = os.fspath(item)
    if text.startswith(("https://", "http://")):
        return {"role": "first_frame", "url": text}
    data = Path(text).read_bytes()
    return {"role": "first_frame", "base64": base64.b64encode(data).decode()}


def _prefer(wait: float | None) -> dict[str, str]:
    return {"prefer": f"wait={max(0, min(MAX_WAIT, int(wait)))}"} if wait else {}


def _idempotency(key: str | None) -> dict[str, str]:
    return {"idempotency-key": key} if key else {}


def _create_job(
    prompt: str,
    model: str | None,
    images: Sequence[ImageInput] | None,
    wait: float | None,
    webhook_url: str | None,
    webhook_events: Sequence[str] | None,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    params: dict[str, Any],
) -> _Call[Job]:
    body: dict[str, Any] = {"prompt": prompt, **params}
    optional = {
        "model": model,
        "images": [_image(i) for i in images] if images else None,
        "webhook_url": webhook_url,
        "webhook_events": list(webhook_events) if webhook_events else None,
        "metadata": metadata,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return _Call(
        "POST", "/jobs", Job, json=body, headers={**_prefer(wait), **_idempotency(idempotency_key)}
    )


def _create_batch(
    jobs: Sequence[dict[str, Any]],
    webhook_url: str | None,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> _Call[Batch]:
    body: dict[str, Any] = {"jobs": list(jobs)}
    if webhook_url:
        body["webhook_url"] = webhook_url
    if metadata is not None:
        body["metadata"] = metadata
    return _Call("POST", "/batches", Batch, json=body, headers=_idempotency(idempotency_key))


def _list_params(status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    return params


class _Models(BaseModel):
    data: list[Model]


def _http_options(base_url: str, api_key: str, timeout: float) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "headers": {"authorization": f"Bearer {api_key}", "user-agent": "soraq-client-python"},
        "timeout": httpx.Timeout(timeout, read=MAX_WAIT + timeout),
    }


class Soraq:
    """client = Soraq("https://soraq.example", api_key); job = client.jobs.create(...)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(**_http_options(base_url, api_key, timeout))
        self.jobs = Jobs(self)
        self.batches = Batches(self)
        self.models = Models(self)

    def _send(self, call: _Call[T]) -> T:
        response = self._http.request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers
        )
        raise_for_error(response)
        return call.parse.model_validate(response.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Soraq:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Jobs:
    def __init__(self, client: Soraq) -> None:
        self._client = client

    def create(
        self,
        prompt: str,
        *,
        model: str | None = None,
        images: Sequence[ImageInput] | None = None,
        wait: float | None = None,
        webhook_url: str | None = None,
        webhook_events: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Job:
        """A new job. `wait` (≤ 60 s) holds the request until the job ends: check `job.done`.
        Extra keyword arguments are the model's own parameters (GET /models)."""
        call = _create_job(
            prompt,
            model,
            images,
            wait,
            webhook_url,
            webhook_events,
            metadata,
            idempotency_key,
            params,
        )
        return self._client._send(call)

    def get(self, job_id: str, *, wait: float | None = None) -> Job:
        return self._client._send(_Call("GET", f"/jobs/{job_id}", Job, headers=_prefer(wait)))

    def list(
        self, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> JobPage:
        params = _list_params(status, limit, cursor)
        return self._client._send(_Call("GET", "/jobs", JobPage, params=params))

    def iter(self, *, status: str | None = None) -> Iterator[Job]:
        """Every job, newest first, page after page."""
        cursor = None
        while True:
            page = self.list(status=status, limit=100, cursor=cursor)
            yield from page.data
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        return self._client._send(_Call("POST", f"/jobs/{job_id}/cancel", Job))

    def delete(self, job_id: str) -> Job:
        """Erase a finished job's data; the answer is its tombstone (`deleted` True). A job
        that has not ended raises (409 job_not_finished): cancel it first."""
        return self._client._send(_Call("DELETE", f"/jobs/{job_id}", Job))

    def stream(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events (its history first) until the `completed` one; a dropped
        connection is resumed from the last event seen."""
        while True:
            headers = {"last-event-id": last_event_id} if last_event_id else {}
            try:
                with self._client._http.stream(
                    "GET", f"/jobs/{job_id}/events", headers=headers
                ) as response:
                    if response.is_error:
                        response.read()
                        raise_for_error(response)
                    parser = EventParser()
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        last_event_id = event.id or last_event_id
                        yield event
                        if event.type == "completed":
                            return
                    return  # the server closed after the terminal event was already sent
            except (httpx.TransportError, httpx.RemoteProtocolError):
                time.sleep(RECONNECT_DELAY)

    def wait(self, job_id: str, timeout: float = 900.0) -> Job:
        """The job once it has ended: its event stream, or (if streaming fails) held GETs.
        TimeoutError if it has not ended within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        try:
            for event in self.stream(job_id):
                if event.job is not None:
                    return event.job
                if time.monotonic() > deadline:
                    break
        except SoraqError as exc:
            if exc.status not in (404, 406, 501):
                raise
        while (left := deadline - time.monotonic()) > 0:
            job = self.get(job_id, wait=min(MAX_WAIT, max(1, left)))
            if job.done:
                return job
        raise TimeoutError(f"job {job_id} did not end within {timeout:g} s")


class Batches:
    def __init__(self, client: Soraq) -> None:
        self._client = client

    def create(
        self,
        jobs: Sequence[dict[str, Any]],
        *,
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        """Up to 1,000 job requests (dicts as for POST /jobs), accepted or refused as one."""
        return self._client._send(_create_batch(jobs, webhook_url, metadata, idempotency_key))

    def get(self, batch_id: str, *, limit: int = 20, cursor: str | None = None) -> Batch:
        params = _list_params(None, limit, cursor)
        return self._client._send(_Call("GET", f"/batches/{batch_id}", Batch, params=params))

    def cancel(self, batch_id: str) -> Batch:
        return self._client._send(_Call("POST", f"/batches/{batch_id}/cancel", Batch))


class Models:
    def __init__(self, client: Soraq) -> None:
        self._client = client

    def list(self) -> list[Model]:
        return self._client._send(_Call("GET", "/models", _Models)).data


class AsyncSoraq:
    """The same calls as Soraq, awaited: `job = await client.jobs.create(...)`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(**_http_options(base_url, api_key, timeout))
        self.jobs = AsyncJobs(self)
        self.batches = AsyncBatches(self)
        self.models = AsyncModels(self)

    async def _send(self, call: _Call[T]) -> T:
        response = await self._http.request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers
        )
        raise_for_error(response)
        return call.parse.model_validate(response.json())

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSoraq:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncJobs:
    def __init__(self, client: AsyncSoraq) -> None:
        self._client = client

    async def create(
        self,
        prompt: str,
        *,
        model: str | None = None,
        images: Sequence[ImageInput] | None = None,
        wait: float | None = None,
        webhook_url: str | None = None,
        webhook_events: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Job:
        call = _create_job(
            prompt,
            model,
            images,
            wait,
            webhook_url,
            webhook_events,
            metadata,
            idempotency_key,
            params,
        )
        return await self._client._send(call)

    async def get(self, job_id: str, *, wait: float | None = None) -> Job:
        return await self._client._send(_Call("GET", f"/jobs/{job_id}", Job, headers=_prefer(wait)))

    async def list(
        self, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> JobPage:
        params = _list_params(status, limit, cursor)
        return await self._client._send(_Call("GET", "/jobs", JobPage, params=params))

    async def cancel(self, job_id: str) -> Job:
        return await self._client._send(_Call("POST", f"/jobs/{job_id}/cancel", Job))

    async def delete(self, job_id: str) -> Job:
        """Erase a finished job's data; the answer is its tombstone (`deleted` True)."""
        return await self._client._send(_Call("DELETE", f"/jobs/{job_id}", Job))

    async def stream(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[Event]:
        while True:
            headers = {"last-event-id": last_event_id} if last_event_id else {}
            try:
                async with self._client._http.stream(
                    "GET", f"/jobs/{job_id}/events", headers=headers
                ) as response:
                    if response.is_error:
                        await response.aread()
                        raise_for_error(response)
                    parser = EventParser()
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        last_event_id = event.id or last_event_id
                        yield event
                        if event.type == "completed":
                            return
                    return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                await asyncio.sleep(RECONNECT_DELAY)

    async def wait(self, job_id: str, timeout: float = 900.0) -> Job:
        deadline = time.monotonic() + timeout
        try:
            async for event in self.stream(job_id):
                if event.job is not None:
                    return event.job
                if time.monotonic() > deadline:
                    break
        except SoraqError as exc:
            if exc.status not in (404, 406, 501):
                raise
        while (left := deadline - time.monotonic()) > 0:
            job = await self.get(job_id, wait=min(MAX_WAIT, max(1, left)))
            if job.done:
                return job
        raise TimeoutError(f"job {job_id} did not end within {timeout:g} s")


class AsyncBatches:
    def __init__(self, client: AsyncSoraq) -> None:
        self._client = client

    async def create(
        self,
        jobs: Sequence[dict[str, Any]],
        *,
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        return await self._client._send(_create_batch(jobs, webhook_url, metadata, idempotency_key))

    async def get(self, batch_id: str, *, limit: int = 20, cursor: str | None = None) -> Batch:
        params = _list_params(None, limit, cursor)
        return await self._client._send(_Call("GET", f"/batches/{batch_id}", Batch, params=params))

    async def cancel(self, batch_id: str) -> Batch:
        return await self._client._send(_Call("POST", f"/batches/{batch_id}/cancel", Batch))


class AsyncModels:
    def __init__(self, client: AsyncSoraq) -> None:
        self._client = client

    async def list(self) -> list[Model]:
        return (await self._client._send(_Call("GET", "/models", _Models))).data
