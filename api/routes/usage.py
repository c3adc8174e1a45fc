"""Usage reports: a client's own (`GET /usage`) and every client's (`GET /admin/usage`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from api import usage
from api.deps import AdminDep, CurrentClient, SessionDep, SettingsDep
from api.params import ERRORS, IsoDay

router = APIRouter(tags=["usage"], responses=ERRORS)

From = Annotated[
    IsoDay | None,
    Query(alias="from", description="first UTC day (default: 29 days before `to`)"),
]
To = Annotated[
    IsoDay | None, Query(alias="to", description="last UTC day, included (default: today)")
]
_CSV = {
    "description": "The groups as CSV with `Accept: text/csv`",
    "content": {"text/csv": {}},
}


def _answer(request: Request, body: dict[str, Any], name: str) -> Response:
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            usage.as_csv(body),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return JSONResponse(body)


@router.get(
    "/usage",
    summary="Credits your jobs used, by day or model",
    responses={200: _CSV},
)
async def my_usage(
    request: Request,
    session: SessionDep,
    client: CurrentClient,
    settings: SettingsDep,
    start: From = None,
    end: To = None,
    group_by: Literal["day", "model"] = "day",
) -> Response:
    begin, stop = usage.period(start, end)
    body = await usage.report(session, settings, group_by, begin, stop, client_id=client.id)
    body["budgets"] = {"daily": client.daily_credits, "monthly": client.monthly_credits}
    return _answer(request, body, "usage")


@router.get(
    "/admin/usage",
    summary="Credits every client's jobs used, by client, model or day",
    dependencies=[AdminDep],
    responses={200: _CSV},
)
async def all_usage(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    start: From = None,
    end: To = None,
    group_by: Literal["client", "model", "day"] = "client",
) -> Response:
    begin, stop = usage.period(start, end)
    body = await usage.report(session, settings, group_by, begin, stop)
    return _answer(request, body, "usage")
