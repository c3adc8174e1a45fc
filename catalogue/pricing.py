"""What a task costs in Kie credits, from the model's price entry in the catalogue.

A price is data: a rate per second of video (or a flat rate per task), multiplied by one factor
per parameter value that changes the price (sound on, a higher resolution, pro mode), plus
flat additions (Veo's 1080p file). Values are matched by their text: `true`, `1080p`, `10`.

    price = { per_second = 11, factor.sound = { true = 2 } }      # Kling 2.6: 55 / 110 per 5 s

Where Kie's list is a grid rather than steps (Kling 3.0: 14/18 per second without sound,
20/27 with), `cases` give the rate for combinations of values, first match first:

    price.per_second = 14
    price.cases = [{ when = { mode = "pro", sound = true }, per_second = 27 }, ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Price:
    per_second: float = 0.0
    per_task: float = 0.0
    seconds_param: str = "duration"  # the param that holds the video's length
    seconds: float | None = None  # a fixed length, for models that take none
    factor: dict[str, dict[str, float]] = field(default_factory=dict)
    add: dict[str, dict[str, float]] = field(default_factory=dict)
    # (when, per_second, per_task): the first whose values all match sets the rates.
    cases: tuple[tuple[dict[str, str], float, float], ...] = ()

    def rates(self, params: dict[str, Any]) -> tuple[float, float]:
        for when, per_second, per_task in self.cases:
            if all(_key(params.get(name)) == value for name, value in when.items()):
                return per_second, per_task
        return self.per_second, self.per_task

    def credits(self, params: dict[str, Any]) -> float:
        """The estimate for one task with these (validated, defaults filled) params."""
        seconds = params.get(self.seconds_param, self.seconds)
        try:
            length = float(seconds) if seconds is not None else 0.0
        except (TypeError, ValueError):
            length = 0.0
        if length <= 0:  # Seedance's -1 ("as the model likes"), Wan's 0 ("as the input"):
            length = self.seconds or 0.0  # the length the price assumes then
        per_second, per_task = self.rates(params)
        total = per_task + per_second * length
        for name, table in self.factor.items():
            total *= table.get(_key(params.get(name)), 1.0)
        for name, table in self.add.items():
            total += table.get(_key(params.get(name)), 0.0)
        return round(total, 2)


def parse_price(model_id: str, raw: dict[str, Any] | None) -> Price | None:
    if raw is None:
        return None
    known = {"per_second", "per_task", "seconds_param", "seconds", "factor", "add", "cases"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"model {model_id}: unknown price keys {sorted(unknown)}")
    price = Price(
        per_second=float(raw.get("per_second", 0)),
        per_task=float(raw.get("per_task", 0)),
        seconds_param=str(raw.get("seconds_param", "duration")),
        seconds=float(raw["seconds"]) if "seconds" in raw else None,
        factor={
            k: {str(v): float(f) for v, f in t.items()} for k, t in raw.get("factor", {}).items()
        },
        add={k: {str(v): float(a) for v, a in t.items()} for k, t in raw.get("add", {}).items()},
        cases=tuple(
            (
                {k: _key(v) for k, v in case["when"].items()},
                float(case.get("per_second", 0)),
                float(case.get("per_task", 0)),
            )
            for case in raw.get("cases", ())
        ),
    )
    if price.per_second < 0 or price.per_task < 0 or (price.per_second == price.per_task == 0):
        raise ValueError(f"model {model_id}: a price needs a positive per_second or per_task")
    if any(f < 0 for t in price.factor.values() for f in t.values()):
        raise ValueError(f"model {model_id}: price factors must not be negative")
    return price


def case_credits(cases: list[dict[str, Any]], body: dict[str, Any]) -> float | None:
    """What a price list written as cases (Kie's price endpoint: first match first, each with
    `when` fields of the upstream body) says a task with this body costs; None if no case
    matches."""
    for case in cases:
        when = case.get("when") or {}
        if all(_key(body.get(name)) == _key(value) for name, value in when.items()):
            try:
                seconds = float(body.get(case.get("seconds_field") or "duration") or 0)
            except (TypeError, ValueError):
                seconds = 0.0
            if seconds <= 0:  # absent, or "as long as the model likes" (-1)
                seconds = float(case.get("seconds") or 0)
            total = float(case.get("per_second") or 0) * seconds + float(case.get("per_task") or 0)
            return round(total + float(case.get("plus") or 0), 2)
    return None
