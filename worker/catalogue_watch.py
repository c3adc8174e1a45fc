"""Kie's live catalogue, followed: once a day (CATALOGUE_CHECK_INTERVAL) the catalogue is
compared with Kie's (catalogue.drift) — a model Kie reports paused or gone becomes unavailable
(new jobs refused, queued ones wait with `model_paused`), and back again when Kie lists it
active; what changed is recorded and sent once to operators as `catalogue.changed`. Kie's
prices and success rates are read at start and every KIE_PRICES_INTERVAL: estimates use
Kie's prices over the bundled table.

Kie's catalogue being unreachable changes nothing: a model is paused because Kie said so,
never because Kie could not be asked."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalogue import get_catalogue
from catalogue.drift import Drift, compare, fields_of
from core.config import Settings
from models.base import utcnow
from models.model_state import CatalogueReport, ModelState, hold_queued, last_report, release_queued
from upstreams.errors import ExternalError
from upstreams.kie_catalogue import KieCatalogue
from worker.operator_events import send_operator_event

log = logging.getLogger(__name__)


def _state(session: Session, model_id: str) -> ModelState:
    row = session.get(ModelState, model_id)
    if row is None:
        row = ModelState(model_id=model_id, status="live")
        session.add(row)
    return row


def check(session: Session, kie: KieCatalogue, settings: Settings) -> Drift | None:
    """One comparison with Kie's catalogue, applied; None when Kie could not be read."""
    try:
        live = {m.id: m.status for m in kie.models("video")}
    except ExternalError as exc:
        log.warning("Kie's catalogue could not be read (%s): nothing changes", exc.message)
        return None
    if not live:
        log.warning("Kie's catalogue listed no video models: taken as unreadable, not as empty")
        return None
    ours = {m.upstream_model for m in get_catalogue().models.values() if m.upstream == "kie-jobs"}
    schemas: dict[str, Any] = {}
    for model_id in live:
        try:
            schemas[model_id] = fields_of(kie.schema(model_id).schema)
        except ExternalError:
            schemas[model_id] = None  # this one's schema unreadable: its fields are not judged
    prices = {
        row.model_id: row.kie_prices
        for row in session.scalars(select(ModelState).where(ModelState.model_id.in_(ours)))
    }
    drift = compare(get_catalogue(), live, schemas, prices)
    now = utcnow()
    apply(session, drift, ours, now)
    record(session, drift, now, settings)
    return drift


def apply(session: Session, drift: Drift, ours: set[str], now: datetime) -> None:
    """Each of our Kie models' availability as Kie reports it, and its queued jobs with it."""
    held: list[str] = []
    released: list[str] = []
    for model_id in sorted(ours):
        if model_id in drift.removed:
            status, reason = "gone", "Kie's catalogue no longer lists it"
        elif model_id in drift.paused:
            status, reason = "paused", f"Kie reports it {drift.paused[model_id]}"
        else:
            status, reason = "live", None
        row = _state(session, model_id)
        if row.status == status:
            continue
        (released if status == "live" else held).append(model_id)
        row.status, row.reason, row.changed_at = status, reason, now
        log.warning(
            "model %s is now %s at Kie%s", model_id, status, f": {reason}" if reason else ""
        )
    dialect = session.get_bind().dialect.name
    if held:
        session.execute(hold_queued(dialect, held))
    if released:
        session.execute(release_queued(dialect, released, now))
    session.commit()


def record(session: Session, drift: Drift, now: datetime, settings: Settings) -> None:
    """Keep the report when it says something new, and tell operators once."""
    body = drift.as_dict()
    previous = session.scalars(last_report()).first()
    if previous is not None and previous.drift == body:
        return
    if previous is None and not drift.any:
        return  # in step from the start: nothing to say
    session.add(CatalogueReport(checked_at=now, drift=body, summary=drift.summary()))
    session.commit()
    log.warning("Kie's catalogue changed: %s", drift.summary())
    notify(body, drift.summary(), now, settings)


def notify(drift: dict[str, Any], summary: str, now: datetime, settings: Settings) -> None:
    """A signed `catalogue.changed` operator event (OPERATOR_WEBHOOK_URL), one per report."""
    if not settings.operator_webhook_url:
        return
    digest = hashlib.sha256(json.dumps(drift, sort_keys=True).encode()).hexdigest()[:16]
    event_id = f"msg_catalogue_{digest}"
    body = json.dumps(
        {
            "type": "catalogue.changed",
            "timestamp": now.isoformat(),
            "data": {"summary": summary, **drift},
        },
        separators=(",", ":"),
    )
    send_operator_event(settings, event_id, body, "catalogue.changed event")


def read_prices(session: Session, kie: KieCatalogue) -> int:
    """Kie's price list and success rate for each of our Kie models; a model whose answer is
    unreadable keeps what was read before. Returns how many prices were read."""
    read = 0
    now = utcnow()
    for spec in get_catalogue().models.values():
        if spec.upstream != "kie-jobs" or spec.status == "retired":
            continue
        row = _state(session, spec.upstream_model)
        try:
            cases = kie.prices(spec.upstream_model)
        except ExternalError:
            cases = None
        if cases is not None:
            row.kie_prices, row.prices_read_at = cases, now
            read += 1
        try:
            rate = kie.success_rate(spec.upstream_model)
        except ExternalError:
            rate = None
        if rate is not None:
            row.kie_success_rate, row.rate_read_at = rate, now
    session.commit()
    return read
