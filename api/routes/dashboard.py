"""The operator's dashboard: server-rendered pages over the admin service.

Login takes the admin token and sets a signed session cookie (HttpOnly, SameSite=Strict);
every form that changes something carries the session's CSRF token.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api import admin_service, usage
from api.charts import stacked_by_day
from api.deps import NudgerDep, SessionDep, SettingsDep, admin_token_matches
from api.errors import CsrfFailed, Unauthorized
from api.model_states import STATES
from api.params import JobId
from api.schemas import AdminJobOut, DeliveryOut, EventOut
from api.service import cancel_job, erase_job
from api.throttle import refuse_failure
from catalogue import get_catalogue
from catalogue.accounts import accounts
from core.config import get_settings
from models.account_queries import account_rows
from models.admin import live_session, new_session, revoke_session
from models.base import utcnow
from models.job import Job, JobStatus
from models.model_state import last_report
from models.usage_queries import daily_by_client

router = APIRouter(prefix="/admin", include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parents[1] / "templates"))


async def _logged_in(request: Request, session: AsyncSession) -> bool:
    """A session counts only while an admin token is configured, and only if its server-side
    record is live: logout and `soraq admin revoke-sessions` end it whatever a cookie says."""
    sid = request.session.get("sid")
    if get_settings().admin_token is None or not isinstance(sid, str):
        return False
    return await session.scalar(live_session(sid, utcnow())) is not None


def _page(
    request: Request, name: str, *, logged_in: bool, status_code: int = 200, **context: Any
) -> Response:
    response = templates.TemplateResponse(
        request,
        name,
        {"logged_in": logged_in, "csrf": request.session.get("csrf"), **context},
        status_code=status_code,
    )
    return response


def _human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"


async def _account(session: AsyncSession) -> dict[str, Any]:
    """For the header: storage used, each upstream account's balance, and a banner for each
    account whose admission is paused."""
    used = await session.scalar(select(func.coalesce(func.sum(Job.media_bytes), 0)))
    shown: dict[str, Any] = {"storage_used": _human_bytes(int(used or 0))}
    report = await session.scalar(last_report())
    if report is not None and report.summary != "in step with Kie":
        shown["catalogue_notice"] = report.summary
        shown["catalogue_checked"] = report.checked_at.isoformat(timespec="seconds")
    settings = get_settings()
    every = accounts(settings)
    rows = {row.name: row for row in (await session.execute(account_rows())).all()}
    balances, banners = [], []
    for upstream in every:
        row = rows.get(upstream.name)
        if row is None:
            continue
        # One account (the default) is simply "Kie", as before accounts.
        label = "Kie" if len(every) == 1 else upstream.name
        if row.kie_credits is not None:
            balances.append(
                {
                    "label": label,
                    "credits": f"{row.kie_credits:,.0f}",
                    "usd": f"{row.kie_credits * settings.credit_usd_rate:,.2f}",
                    "low": row.kie_credits < settings.kie_low_credits,
                }
            )
        if row.account_reason is not None:
            banners.append(
                {
                    "account": "the account" if len(every) == 1 else f"account {upstream.name}",
                    "reason": row.account_reason,
                    "credits": f"{row.kie_credits:,.0f}" if row.kie_credits is not None else "?",
                    "since": row.account_paused_at.isoformat(timespec="seconds")
                    if row.account_paused_at
                    else None,
                    "others": [a.name for a in every if a.name != upstream.name],
                }
            )
    return {
        **shown,
        "balances": balances,
        "banners": banners,
        "probe_interval": f"{settings.account_probe_interval:g}",
    }


async def _check_csrf(request: Request, session: AsyncSession, token: str) -> None:
    expected = request.session.get("csrf")
    if not await _logged_in(request, session):
        raise Unauthorized("log in first")
    if not expected or not secrets.compare_digest(expected.encode(), token.encode()):
        raise CsrfFailed("the form is stale; reload the page")


def _local(value: str | None) -> datetime | None:
    """A datetime-local form value (no zone) is read as UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/", include_in_schema=False)
async def with_a_slash() -> Response:
    """`/admin/` as people type it: a relative redirect (never one built from the Host)."""
    return Response(status_code=307, headers={"location": "/admin"})


@router.get("", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    session: SessionDep,
    status: Annotated[list[str] | None, Query()] = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    client: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    created_after: Annotated[str | None, Query(max_length=40)] = None,
    created_before: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    if not await _logged_in(request, session):
        return _page(request, "login.html", logged_in=False)
    statuses = [s for s in status or [] if s in JobStatus.__members__.values()]
    filters = {
        "status": statuses,
        "model": model or None,
        "client": client or None,
        "q": q or None,
        "created_after": created_after,
        "created_before": created_before,
    }
    rows, next_cursor = await admin_service.list_jobs(
        session,
        statuses=statuses,
        model=model or None,
        client=client or None,
        created_after=_local(created_after),
        created_before=_local(created_before),
        q=q or None,
        limit=50,
        cursor=cursor or None,
    )
    next_url = None
    if next_cursor:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        next_url = "/admin?" + urlencode([*params, ("cursor", next_cursor)])
    return _page(
        request,
        "jobs.html",
        logged_in=True,
        jobs=[AdminJobOut.of_admin(job, name) for job, name in rows],
        next_url=next_url,
        filters=filters,
        statuses=[s.value for s in JobStatus],
        models=list(get_catalogue().models),
        **await _account(session),
    )


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    token: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if not admin_token_matches(token, settings):
        await refuse_failure(session, request)
        return _page(
            request,
            "login.html",
            logged_in=False,
            status_code=401,
            error="That token is not right.",
        )
    sid = secrets.token_urlsafe(32)
    await session.execute(new_session(sid, utcnow()))
    await session.commit()
    request.session.clear()
    request.session.update(sid=sid, csrf=secrets.token_urlsafe(24))
    return RedirectResponse("/admin", status_code=303)


@router.post("/logout")
async def logout(
    request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    await _check_csrf(request, session, csrf)
    await session.execute(revoke_session(str(request.session.get("sid")), utcnow()))
    await session.commit()
    request.session.clear()
    return RedirectResponse("/admin", status_code=303)


@router.get("/view/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: JobId, session: SessionDep) -> Response:
    if not await _logged_in(request, session):
        return RedirectResponse("/admin", status_code=303)
    job, client_name, events, deliveries = await admin_service.job_detail(session, job_id)
    return _page(
        request,
        "job.html",
        logged_in=True,
        job=AdminJobOut.of_admin(job, client_name),
        events=[EventOut.model_validate(e) for e in events],
        webhooks=[DeliveryOut.model_validate(d) for d in deliveries],
        flash=request.session.pop("flash", None),
        **await _account(session),
    )


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, session: SessionDep) -> Response:
    """Every model: status (as Kie's live catalogue last said), price and its source, and
    success rates — Kie's published one and soraq's own over its last 100 jobs."""
    if not await _logged_in(request, session):
        return RedirectResponse("/admin", status_code=303)
    await STATES.refresh(session)
    await STATES.refresh_rates(session)
    report = await session.scalar(last_report())
    return _page(
        request,
        "models.html",
        logged_in=True,
        models=[STATES.describe(spec) for spec in get_catalogue().models.values()],
        report=report,
        **await _account(session),
    )


async def _credits_report(session: AsyncSession) -> dict[str, Any]:
    start, end = usage.period(None, None)
    return await usage.report(session, get_settings(), "client", start, end)


@router.get("/credits", response_class=HTMLResponse)
async def credits_page(request: Request, session: SessionDep) -> Response:
    """Credits per day by client over the last 30 days: a chart and a table."""
    if not await _logged_in(request, session):
        return RedirectResponse("/admin", status_code=303)
    start, end = usage.period(None, None)
    dialect = session.get_bind().dialect.name
    rows = [
        (str(day), str(client), float(total or 0))
        for day, client, total in (
            await session.execute(daily_by_client(dialect, start=start, end=end))
        ).all()
    ]
    return _page(
        request,
        "credits.html",
        logged_in=True,
        report=await _credits_report(session),
        chart=stacked_by_day(rows, start.date(), (end - start).days),
        **await _account(session),
    )


@router.get("/credits.csv")
async def credits_csv(request: Request, session: SessionDep) -> Response:
    if not await _logged_in(request, session):
        return RedirectResponse("/admin", status_code=303)
    return Response(
        usage.as_csv(await _credits_report(session)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
    )


@router.post("/view/{job_id}/retry")
async def retry_from_page(
    request: Request,
    job_id: JobId,
    session: SessionDep,
    nudger: NudgerDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    await _check_csrf(request, session, csrf)
    await admin_service.retry_job(session, job_id, nudger=nudger)
    request.session["flash"] = "Retried: the job is queued for a new Kie task."
    return RedirectResponse(f"/admin/view/{job_id}", status_code=303)


@router.post("/view/{job_id}/cancel")
async def cancel_from_page(
    request: Request,
    job_id: JobId,
    session: SessionDep,
    nudger: NudgerDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    await _check_csrf(request, session, csrf)
    await cancel_job(session, None, job_id, nudger=nudger, by="an operator")
    request.session["flash"] = "Canceled."
    return RedirectResponse(f"/admin/view/{job_id}", status_code=303)


@router.post("/view/{job_id}/erase")
async def erase_from_page(
    request: Request,
    job_id: JobId,
    session: SessionDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    await _check_csrf(request, session, csrf)
    await erase_job(session, None, job_id, by="an operator")
    request.session["flash"] = "Erased: its prompt, inputs, metadata and files are gone."
    return RedirectResponse(f"/admin/view/{job_id}", status_code=303)
