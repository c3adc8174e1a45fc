"""What the worker last read of Kie's live catalogue, as this API process sees it: which
models are unavailable (paused or gone at Kie), Kie's own prices and success rates — read
from `model_states` at most every STATE_SECONDS (one small query, shared by every request in
between), so the hot POST /jobs path pays nothing per request. soraq's own success rate per
model (its last 100 finished jobs) is read the same way, for GET /models."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue import Catalogue, ModelSpec
from catalogue.pricing import case_credits
from core.errors import InvalidRequest
from models.job_queries import recent_outcomes
from models.model_state import ModelState

STATE_SECONDS = 5.0
RATES_SECONDS = 60.0


@dataclass
class ModelStates:
    rows: dict[str, ModelState] = field(default_factory=dict)
    read_at: float = float("-inf")
    own_rates: dict[str, tuple[float, int]] = field(default_factory=dict)
    rates_at: float = float("-inf")

    async def refresh(self, session: AsyncSession) -> None:
        if time.monotonic() - self.read_at < STATE_SECONDS:
            return
        self.read_at = time.monotonic()  # first: concurrent requests do not all read
        rows = (await session.scalars(select(ModelState))).all()
        for row in rows:
            session.expunge(row)
        # End the read's transaction: POST /jobs' insert may then commit in one round trip
        # (models.one_trip takes only a connection with no transaction open).
        await session.rollback()
        self.rows = {row.model_id: row for row in rows}

    async def refresh_rates(self, session: AsyncSession) -> None:
        if time.monotonic() - self.rates_at < RATES_SECONDS:
            return
        self.rates_at = time.monotonic()
        outcomes = (await session.execute(recent_outcomes(100))).all()
        self.own_rates = {
            model: (round(succeeded / total, 4), total)
            for model, succeeded, total in outcomes
            if total
        }

    def unavailable(self, spec: ModelSpec) -> str | None:
        """Why a new job for this model is refused now (None: it is not)."""
        if spec.upstream != "kie-jobs":
            return None
        row = self.rows.get(spec.upstream_model)
        if row is None or row.status == "live":
            return None
        return row.reason or f"{row.status} at Kie"

    def refuse_if_unavailable(self, catalogue: Catalogue, spec: ModelSpec) -> None:
        reason = self.unavailable(spec)
        if reason is None:
            return
        alternatives = catalogue.alternatives(spec, lambda m: self.unavailable(m) is None)
        raise InvalidRequest(
            "model",
            f"model {spec.id} is unavailable ({reason}); live models of the same kind: "
            f"{', '.join(alternatives) or 'none'}",
            code="model_unavailable",
            alternatives=alternatives,
        )

    def kie_cases(self, spec: ModelSpec) -> list[dict[str, Any]] | None:
        row = self.rows.get(spec.upstream_model) if spec.upstream == "kie-jobs" else None
        return row.kie_prices if row is not None else None

    def estimate(self, spec: ModelSpec, params: dict[str, Any]) -> float:
        """Kie's price for these params when Kie's price list has one, else the bundled."""
        cases = self.kie_cases(spec)
        if cases:
            found = case_credits(cases, spec.upstream_input("p", params, []))
            if found is not None:
                return found
        return spec.estimate(params)

    def describe(self, spec: ModelSpec) -> dict[str, Any]:
        """The model as GET /models shows it, with what Kie's live catalogue says."""
        shown = spec.describe()
        row = self.rows.get(spec.upstream_model) if spec.upstream == "kie-jobs" else None
        if spec.live and (reason := self.unavailable(spec)):
            shown["status"], shown["paused_reason"] = "paused", reason
        price = shown.get("price")
        if price is not None:
            kie_read = row.prices_read_at if row is not None and row.kie_prices else None
            price["source"] = "kie" if kie_read else "bundled"
            price["read_at"] = _iso(kie_read)
            if kie_read:
                price["default_credits"] = self.estimate(spec, spec.validate_defaults())
        own = self.own_rates.get(spec.id)
        shown["success_rate"] = {
            "kie": row.kie_success_rate if row is not None else None,
            "kie_read_at": _iso(row.rate_read_at if row is not None else None),
            "soraq": own[0] if own else None,
            "soraq_jobs": own[1] if own else 0,
        }
        return shown


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


STATES = ModelStates()  # one per API process
