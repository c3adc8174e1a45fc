"""`soraq submit` and `soraq jobs`: a person's client for a running soraq, over HTTP."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from soraq_client import Job, Soraq, SoraqError

TERMINAL = ("succeeded", "failed", "canceled")
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)  # pipes get whole lines


def _target() -> tuple[str, str]:
    url = os.environ.get("SORAQ_URL", "http://127.0.0.1:8000")
    key = os.environ.get("SORAQ_API_KEY")
    if not key and Path("var/demo-api-key").exists():  # `soraq dev` in this folder
        key = Path("var/demo-api-key").read_text().strip()
    if not key:
        console.print("[red]Set SORAQ_API_KEY[/red] (and SORAQ_URL if soraq is not on :8000).")
        raise SystemExit(2)
    return url, key


def _sdk() -> Soraq:
    url, key = _target()
    return Soraq(url, key, timeout=60)


def submit(prompt: str, image: str | None, model: str | None, wait: bool) -> int:
    if image and not image.startswith(("https://", "http://")) and not Path(image).is_file():
        console.print(f"[red]no such file:[/red] {image}")
        return 2
    with _sdk() as client:
        try:
            job = client.jobs.create(prompt, model=model, images=[image] if image else None)
            out.print(job.id)
            if not wait:
                return 0
            job = _follow(client, job)
        except SoraqError as exc:
            console.print(f"[red]{exc.status} {exc.code}:[/red] {exc.message}")
            return 1
    shown = job.model_dump(mode="json")
    console.print(_usage_line(shown))
    if job.status == "succeeded" and job.result is not None:
        for url in job.result.video_urls:
            out.print(url)
        return 0
    error = shown.get("error") or {"code": job.status, "message": ""}
    console.print(f"[red]{job.status}: {error['code']}[/red] {error['message']}")
    return 1


def _follow(client: Soraq, job: Job) -> Job:
    """The job's event stream drives a progress bar until the job ends."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(job.status, total=100)
        for event in client.jobs.stream(job.id):
            if event.job is not None:
                return event.job
            if event.type == "status":
                progress.update(bar, description=f"{job.id} · {event.data['status']}")
            elif event.type == "progress":
                progress.update(bar, completed=event.data.get("progress") or 0)
    return client.jobs.wait(job.id)


def jobs(status: str | None, limit: int) -> int:
    with _sdk() as client:
        try:
            page = client.jobs.list(status=status, limit=limit).model_dump(mode="json")
        except SoraqError as exc:
            console.print(f"[red]{exc.status} {exc.code}:[/red] {exc.message}")
            return 1
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
