"""The routes to fal.ai: which of soraq's models fal serves, under which endpoint, and how a
job's validated input becomes fal's request body (catalogue/fal.toml). Data, like the models;
a model fal does not list here cannot go to a fal account, and a job whose values or inputs
fal cannot take (`limits`, an input role with no fal field) stays with Kie's accounts."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from catalogue.pricing import Price, parse_price

BUNDLED = Path(__file__).with_name("fal.toml")


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class FieldMap:
    target: str  # fal's field
    suffix: str = ""  # fal's enums spell lengths "8s"
    text: bool = False  # fal takes the value as a string ("5"): implied by a suffix
    values: dict[str, Any] = field(default_factory=dict)  # soraq value → fal value
    drop: frozenset[str] = frozenset()  # values fal has no word for: leave the field out

    def put(self, body: dict[str, Any], value: Any) -> None:
        text = _text(value)
        if text in self.drop:
            return
        if text in self.values:
            body[self.target] = self.values[text]
        elif self.suffix or self.text:
            body[self.target] = f"{value}{self.suffix}"
        else:
            body[self.target] = value


@dataclass(frozen=True)
class Variant:
    """Another fal endpoint for some jobs of the model (fal splits what Kie keeps in one:
    text- and image-to-video, standard and pro): the first variant whose `when` values all
    match and whose `inputs` roles are all given takes the job; `omit` lists soraq params
    that endpoint has no field for (Kling's image-to-video takes its ratio from the image)."""

    endpoint: str
    when: dict[str, str]
    inputs: frozenset[str]
    omit: frozenset[str]

    def matches(self, params: dict[str, Any], roles: Iterable[str]) -> bool:
        given = set(roles)
        return self.inputs <= given and all(
            _text(params.get(name)) == value for name, value in self.when.items()
        )


@dataclass(frozen=True)
class FalRoute:
    model: str  # soraq's model id
    endpoint: str  # fal's endpoint id (for a job no variant takes)
    fields: dict[str, FieldMap]
    fixed: dict[str, Any]
    ignored: dict[str, str]  # soraq param → why fal has no counterpart
    price: Price | None
    price_basis: str
    inputs: dict[str, str] = field(default_factory=dict)  # soraq input role → fal's URL field
    variants: tuple[Variant, ...] = ()
    limits: dict[str, frozenset[str]] = field(default_factory=dict)  # param → values fal takes
    prompt_max: int | None = None  # fal's longest prompt, where Kie takes longer ones

    def variant(self, params: dict[str, Any], roles: Iterable[str]) -> Variant | None:
        roles = list(roles)
        return next((v for v in self.variants if v.matches(params, roles)), None)

    def endpoint_for(self, params: dict[str, Any], roles: Iterable[str]) -> str:
        chosen = self.variant(params, roles)
        return chosen.endpoint if chosen is not None else self.endpoint

    def endpoints(self) -> list[str]:
        return [self.endpoint, *(v.endpoint for v in self.variants)]

    def refusal(self, prompt: str, params: dict[str, Any], roles: Iterable[str]) -> str | None:
        """Why fal cannot make this job (None: it can): no prompt where fal needs one, a value
        outside fal's `limits`, or an input fal's endpoints have no field for. Such a job goes
        to Kie's accounts only."""
        if not prompt.strip():
            return f"fal's {self.model} needs a prompt"
        if self.prompt_max is not None and len(prompt) > self.prompt_max:
            return f"fal's {self.model} takes prompts of up to {self.prompt_max} characters"
        for name, allowed in self.limits.items():
            value = params.get(name)
            if value is not None and _text(value) not in allowed:
                return f"fal serves {self.model} with {name} {', '.join(sorted(allowed))} only"
        unmapped = sorted(set(roles) - set(self.inputs))
        if unmapped:
            return f"fal's {self.model} takes no {', '.join(unmapped)} input"
        return None

    def body(
        self, prompt: str, params: dict[str, Any], images: list[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        """fal's request body for a job: the prompt, each mapped param, each input's URL
        (by role), the fixed fields."""
        images = images or []
        chosen = self.variant(params, (role for role, _ in images))
        omit = chosen.omit if chosen is not None else frozenset()
        body: dict[str, Any] = {"prompt": prompt, **self.fixed} if prompt else dict(self.fixed)
        for name, value in params.items():
            if name in self.fields and name not in omit and value is not None:
                self.fields[name].put(body, value)
        for role, url in images:
            if role in self.inputs:
                body[self.inputs[role]] = url
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


def _variant(model: str, raw: dict[str, Any]) -> Variant:
    known = {"endpoint", "when", "inputs", "omit"}
    if set(raw) - known:
        raise ValueError(f"fal route {model}: unknown variant keys {sorted(set(raw) - known)}")
    return Variant(
        endpoint=str(raw["endpoint"]).strip("/"),
        when={str(k): _text(v) for k, v in raw.get("when", {}).items()},
        inputs=frozenset(str(r) for r in raw.get("inputs", [])),
        omit=frozenset(str(p) for p in raw.get("omit", [])),
    )


ROUTE_KEYS = frozenset(
    {"model", "endpoint", "like", "drop_fields", "fields", "fixed", "ignored", "inputs"}
    | {"variants", "limits", "prompt_max", "price", "price_basis"}
)


def _resolved(tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each route's table with its `like` laid under it: a route `like` another model's is
    that route with its own keys over it — its own `fields` added to (or replacing) the
    other's, less those it names in `drop_fields`; any other key it gives replaces the
    other's whole. The text and image endpoints of one fal model differ in a key or two."""
    by_model: dict[str, dict[str, Any]] = {}
    for raw in tables:
        model = str(raw.get("model", "?"))
        if set(raw) - ROUTE_KEYS:
            raise ValueError(f"fal route {model}: unknown keys {sorted(set(raw) - ROUTE_KEYS)}")
        if "endpoint" not in raw:  # never inherited: two models, one endpoint, is a slip
            raise ValueError(f"fal route {model}: no endpoint of its own")
        if model in by_model:
            raise ValueError(f"fal route {model}: a second route of the model")
        by_model[model] = raw
    done: dict[str, dict[str, Any]] = {}

    def resolve(model: str, seen: tuple[str, ...]) -> dict[str, Any]:
        if model in seen:
            loop = " → ".join((*seen, model))
            raise ValueError(f"fal route {seen[0]}: `like` goes round: {loop}")
        if model not in done:
            entry = dict(by_model[model])
            base = entry.pop("like", None)
            dropped = set(entry.pop("drop_fields", []))
            if base is not None:
                if str(base) not in by_model:
                    raise ValueError(f"fal route {model}: like {base!r}, which has no route")
                parent = resolve(str(base), (*seen, model))
                fields = {
                    k: v for k, v in parent.get("fields", {}).items() if k not in dropped
                } | dict(entry.pop("fields", {}))
                entry = {**parent, **entry, "fields": fields}
            elif dropped:
                raise ValueError(f"fal route {model}: drop_fields without like")
            done[model] = entry
        return done[model]

    return [resolve(model, ()) for model in by_model]


def parse(text: str) -> dict[str, FalRoute]:
    routes = {}
    for raw in _resolved(tomllib.loads(text).get("routes", [])):
        model = str(raw["model"])
        routes[model] = FalRoute(
            model=model,
            endpoint=str(raw["endpoint"]).strip("/"),
            fields={name: _field(name, spec) for name, spec in raw.get("fields", {}).items()},
            fixed=dict(raw.get("fixed", {})),
            ignored={str(k): str(v) for k, v in raw.get("ignored", {}).items()},
            price=parse_price(f"fal route {model}", raw.get("price")),
            price_basis=str(raw.get("price_basis", "")),
            inputs={str(k): str(v) for k, v in raw.get("inputs", {}).items()},
            variants=tuple(_variant(model, v) for v in raw.get("variants", [])),
            limits={
                str(k): frozenset(_text(v) for v in values)
                for k, values in raw.get("limits", {}).items()
            },
            prompt_max=int(raw["prompt_max"]) if "prompt_max" in raw else None,
        )
        apps = {"/".join(e.split("/")[:2]) for e in routes[model].endpoints()}
        if len(apps) > 1:
            # fal's status and result URLs name the app only: a job's task id keeps it, and a
            # webhook is matched to the job by it.
            raise ValueError(f"fal route {model}: its endpoints span apps {sorted(apps)}")
    return routes


@cache
def fal_routes() -> dict[str, FalRoute]:
    """soraq model id → its route to fal (the bundled table)."""
    return parse(BUNDLED.read_text())
