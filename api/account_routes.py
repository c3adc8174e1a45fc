"""Where each model can go: its routes (the accounts serving it) and their health, for
GET /models — names, providers and pauses only, never a key or an address — and the account
a new job is pinned to, if any."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import JobCreate
from catalogue import ModelSpec
from catalogue.accounts import Account, accounts
from catalogue.fal import fal_routes
from core.config import Settings
from core.errors import InvalidRequest
from models.account_queries import account_health
from models.base import utcnow

Health = tuple[tuple[str, str | None, bool], ...]  # (account, refusal, rate-limited) each


async def read_health(session: AsyncSession, every: tuple[Account, ...]) -> Health:
    now = utcnow()
    rows = {row.name: row for row in (await session.execute(account_health())).all()}
    found = []
    for account in every:
        row = rows.get(account.name)
        reason = row.account_reason if row is not None else None
        until: datetime | None = row.paused_until if row is not None else None
        found.append((account.name, reason, until is not None and until > now))
    return tuple(found)


def routes(model_id: str, every: tuple[Account, ...], health: Health) -> list[dict[str, Any]]:
    """The model's routes by priority: `live`, or `paused` with why (the account's refusal,
    or `rate_limited` while a 429's Retry-After runs)."""
    shown = []
    for account, (_, reason, limited) in zip(every, health, strict=True):
        if not account.serves(model_id):
            continue
        why = reason or ("rate_limited" if limited else None)
        route: dict[str, Any] = {
            "account": account.name,
            "provider": account.provider,
            "status": "paused" if why else "live",
            "reason": why,
        }
        if account.provider == "fal":  # fal's own endpoints, and what it cannot honour
            fal = fal_routes()[model_id]
            route |= {
                "upstream_model": fal.endpoint,
                "upstream_models": fal.endpoints(),
                "ignores": fal.ignored,
                # Jobs with other values, or other inputs, go to Kie's accounts only.
                "limits": {name: sorted(values) for name, values in fal.limits.items()},
                "inputs": sorted(fal.inputs),
                "prompt_max": fal.prompt_max,  # None: as long as the model takes
            }
        shown.append(route)
    return shown


def pinned_route(
    request: JobCreate,
    spec: ModelSpec,
    settings: Settings,
    continued: list[str],
    fal_refusal: str | None = None,
) -> str | None:
    """The account a new job must go to (None: any account serving its model).

    - it continues an earlier task (`continued`: the accounts those tasks are at): there,
      since a task exists at one account only;
    - the client pinned it (`route`): there, if that account serves the model;
    - the client forbade failover: its model's first route by priority.
    A model no account serves is refused here, not left to wait for its timeout; so is a job
    only fal accounts serve and fal cannot make (`fal_refusal`), saying why."""
    every = accounts(settings)
    serving = [a.name for a in every if a.takes(spec.id, fal_refusal)]
    listed = ", ".join(serving) or "none"
    if not serving:
        detail = f"no upstream account of this service serves {spec.id}"
        if fal_refusal and any(a.serves(spec.id) for a in every):
            detail = f"{detail} with this request: {fal_refusal}"
        raise InvalidRequest("model", detail)
    if request.route is not None and request.route not in serving:
        named = next((a for a in every if a.name == request.route), None)
        if named is None:
            why = "no such account"
        elif fal_refusal and named.serves(spec.id):
            why = f"account {request.route} cannot take this job: {fal_refusal}"
        else:
            why = f"account {request.route} does not serve {spec.id}"
        raise InvalidRequest("route", f"{why}; this model's routes are: {listed}")
    at = sorted(set(continued))
    if len(at) > 1:
        raise InvalidRequest("inputs", f"the tasks to continue are at different accounts ({at})")
    if at:
        if at[0] not in serving:
            raise InvalidRequest(
                "inputs", f"the task to continue is at account {at[0]}, which no longer serves it"
            )
        if request.route is not None and request.route != at[0]:
            raise InvalidRequest(
                "route", f"the task this job continues is at account {at[0]}, not {request.route}"
            )
        return at[0]
    if request.route is not None:
        return request.route
    return None if request.failover else serving[0]


MAX_REFUSAL = 200


def fal_refusal_of(
    model_id: str, prompt: str, params: dict[str, Any], roles: set[str]
) -> str | None:
    """Why fal cannot make this job (None: it can, or fal has no route for the model)."""
    route = fal_routes().get(model_id)
    why = route.refusal(prompt, params, roles) if route is not None else None
    return why[:MAX_REFUSAL] if why is not None else None  # jobs.fal_refusal's length


def served_by_fal(settings: Settings, model_id: str) -> bool:
    """Whether a fal account serves the model (Kie's pauses do not hold it back there)."""
    return any(a.provider == "fal" and a.serves(model_id) for a in accounts(settings))
