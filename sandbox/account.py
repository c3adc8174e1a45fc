"""The sandbox's Kie account: a balance in credits that each accepted createTask draws from
(by sandbox/prices.toml), refunded when the generation fails, topped up by tests."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from catalogue.pricing import case_credits

PRICES = Path(__file__).with_name("prices.toml")


@cache
def _cases() -> list[dict[str, Any]]:
    with open(PRICES, "rb") as f:
        return list(tomllib.load(f)["price"])


def cases(family: str, model: str) -> list[dict[str, Any]]:
    """The price list's cases for one model, in order (what Kie's price endpoint serves)."""
    return [c for c in _cases() if c["family"] == family and c["model"] == model]


def price(family: str, model: str, body: dict[str, Any]) -> float | None:
    """What Kie charges for this create body; None for a model with no price listed."""
    return case_credits(cases(family, model), body)


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
