"""The sandbox's Kie account: a balance in credits that each accepted createTask draws from
(by sandbox/prices.toml), refunded when the generation fails, topped up by tests."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PRICES = Path(__file__).with_name("prices.toml")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@cache
def _cases() -> list[dict[str, Any]]:
    with open(PRICES, "rb") as f:
        return list(tomllib.load(f)["price"])


def price(family: str, model: str, body: dict[str, Any]) -> float | None:
    """What Kie charges for this create body; None for a model with no price listed."""
    for case in _cases():
        if case["family"] != family or case["model"] != model:
            continue
        when = case.get("when", {})
        if all(_text(body.get(name)) == _text(value) for name, value in when.items()):
            try:
                seconds = float(body.get(case.get("seconds_field", "duration")) or 0)
            except (TypeError, ValueError):
                seconds = 0.0
            if seconds <= 0:  # absent, or "as long as the model likes" (-1)
                seconds = float(case.get("seconds", 0))
            total = case.get("per_second", 0) * seconds + case.get("per_task", 0)
            return round(total + case.get("plus", 0), 2)
    return None


@dataclass
class Account:
    credits: float

    def charge(self, amount: float) -> bool:
        if amount > self.credits:
            return False
        self.credits = round(self.credits - amount, 2)
        return True

    def refund(self, amount: float) -> None:
        self.credits = round(self.credits + amount, 2)
