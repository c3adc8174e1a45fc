"""`soraq submit` and `soraq jobs`: a person's client for a running soraq, over HTTP."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

TERMINAL = ("succeeded", "failed", "canceled")
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)  # pipes get whole lines


def _client() -> httpx.Client:
    url = os.environ.get("SORAQ_URL", "http://127.0.0.1:8000")
    key = os.environ.get("SORAQ_API_KEY")
    if not key and Path("var/demo-api-key").exists():  # `soraq dev` in this folder
        key = Path("var/demo-api-key").read_text().strip()
    if not key:
        console.print("[red]Set SORAQ_API_KEY[/red] (and SORAQ_URL if soraq is not on :8000).")
        raise SystemExit(2)
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=60)


def _fail_on_error(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.is_error:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        console.print(
            f"[red]{response.status_code} {error.get('code', 'error')}:[/red] "
            f"{error.get('message', response.text[:300])}"
        )
        raise SystemExit(1)
    return dict(body)


def submit(prompt: str, image: str | None, model: str | None, wait: bool) -> int:
    fields: dict[str, Any] = {"prompt": prompt}
    if model:
        fields["model"] = model
    with _client() as api:
        if image and image.startswith(("https://", "http://")):
            response = api.post("/jobs", json={**fields, "image_url": image})
        elif image:
            path = Path(image)
            if not path.is_file():
                console.print(f"[red]no such file:[/red] {image}")
                return 2
            with path.open("rb") as f:
                response = api.post("/jobs", data=fields, files={"image": (path.name, f)})
        else:
            response = api.post("/jobs", json=fields)
        job = _fail_on_error(response)
        out.print(job["id"])
        if not wait:
            return 0
        job = _follow(api, job)
    console.print(_usage_line(job))
    if job["status"] == "succeeded":
        for url in job["result"]["video_urls"]:
            out.print(url)
        return 0
    error = job.get("error") or {"code": job["status"], "message": ""}
    console.print(f"[red]{job['status']}: {error['code']}[/red] {error['message']}")
    return 1


def _follow(api: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(job["status"], total=100)
        while job["status"] not in TERMINAL:
            time.sleep(1)
            job = _fail_on_error(api.get(f"/jobs/{job['id']}"))
            progress.update(
                bar,
                description=f"{job['id']} · {job['status']}",
                completed=job.get("progress") or 0,
            )
    return job


def jobs(status: str | None, limit: int) -> int:
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    with _client() as api:
        page = _fail_on_error(api.get("/jobs", params=params))
    table = Table()
    for name in ("id", "status", "model", "created"):
        table.add_column(name, no_wrap=True)
    table.add_column("credits", justify="right", no_wrap=True)
    table.add_column("prompt")
    for job in page["data"]:
        table.add_row(
            job["id"],
            job["status"],
            job["model"],
            job["created_at"][:19].replace("T", " "),
            _credits(job.get("usage") or {}),
            job["input"]["prompt"][:60],
        )
    out.print(table)
    return 0


def _credits(usage: dict[str, Any]) -> str:
    """Charged credits once known (`~` marks soraq's estimate), else the estimate."""
    charged, estimated = usage.get("credits_charged"), usage.get("credits_estimated")
    if charged is not None:
        return f"{charged:g}" if usage.get("credits_charged_source") == "kie" else f"~{charged:g}"
    return f"(~{estimated:g})" if estimated is not None else "—"


def _usage_line(job: dict[str, Any]) -> str:
    usage = job.get("usage") or {}
    usd = usage.get("usd_estimated")
    source = {"kie": "reported by Kie", "estimate": "estimated", "not_submitted": "not charged"}
    how = source.get(str(usage.get("credits_charged_source")), "so far")
    return f"credits: {_credits(usage)} ({how})" + (f" · ${usd:.2f}" if usd is not None else "")
