"""The routes to fal.ai: which of soraq's models fal serves, under which endpoint, and how a
job's validated input becomes fal's request body (catalogue/fal.toml). Data, like the models;
a model fal does not list here cannot go to a fal account."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from catalogue.pricing import Price, parse_price

BUNDLED = Path(__file__).with_name("fal.toml")


@dataclass(frozen=True)
class FieldMap:
    target: str  # fal's field
    suffix: str = ""  # fal's enums spell lengths "8s"
    text: bool = False  # fal takes the value as a string ("5"): implied by a suffix
    values: dict[str, Any] = field(default_factory=dict)  # soraq value → fal value
    drop: frozenset[str] = frozenset()  # values fal has no word for: leave the field out

    def put(self, body: dict[str, Any], value: Any) -> None:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text in self.drop:
            return
        if text in self.values:
            body[self.target] = self.values[text]
        elif self.suffix or self.text:
            body[self.target] = f"{value}{self.suffix}"
        else:
            body[self.target] = value


@dataclass(frozen=True)
class FalRoute:
    model: str  # soraq's model id
    endpoint: str  # fal's endpoint id
    fields: dict[str, FieldMap]
    fixed: dict[str, Any]
    ignored: dict[str, str]  # soraq param → why fal has no counterpart
    price: Price | None
    price_basis: str

    def body(self, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
        """fal's request body for a job: the prompt, each mapped param, the fixed fields."""
        body: dict[str, Any] = {"prompt": prompt, **self.fixed}
        for name, value in params.items():
            if name in self.fields and value is not None:
                self.fields[name].put(body, value)
        return body

    def usd(self, params: dict[str, Any]) -> float | None:
        return self.price.credits(params) if self.price is not None else None


def _field(name: str, raw: str | dict[str, Any]) -> FieldMap:
    if isinstance(raw, str):
        return FieldMap(raw)
    known = {"field", "suffix", "text", "map", "drop"}
    if set(raw) - known:
        raise ValueError(f"fal field {name}: unknown keys {sorted(set(raw) - known)}")
    return FieldMap(
        str(raw.get("field", name)),
        str(raw.get("suffix", "")),
        bool(raw.get("text", False)),
        {str(k): v for k, v in dict(raw.get("map", {})).items()},
        frozenset(str(v) for v in raw.get("drop", [])),
    )


def parse(text: str) -> dict[str, FalRoute]:
    routes = {}
    for raw in tomllib.loads(text).get("routes", []):
        model = str(raw["model"])
        routes[model] = FalRoute(
            model=model,
            endpoint=str(raw["endpoint"]).strip("/"),
            fields={name: _field(name, spec) for name, spec in raw.get("fields", {}).items()},
            fixed=dict(raw.get("fixed", {})),
            ignored={str(k): str(v) for k, v in raw.get("ignored", {}).items()},
            price=parse_price(f"fal route {model}", raw.get("price")),
            price_basis=str(raw.get("price_basis", "")),
        )
    return routes


@cache
def fal_routes() -> dict[str, FalRoute]:
    """soraq model id → its route to fal (the bundled table)."""
    return parse(BUNDLED.read_text())
