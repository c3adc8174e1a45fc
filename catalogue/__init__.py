"""The model catalogue: which video models soraq serves, what each accepts, and how a request
becomes the upstream's own body. Models are data (models.toml); this module only reads them.

Each model's accepted input is a JSON Schema, compiled once per model and used both to validate
`POST /jobs` and to show clients what they may send (`GET /models`). May import core/ only."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from catalogue.pricing import Price, parse_price
from core.config import get_settings
from core.errors import InvalidRequest

BUNDLED = Path(__file__).with_name("models.toml")
ROLES = ("first_frame", "last_frame", "reference")  # also the order images are sent in
UPSTREAMS = ("kie-jobs", "kie-veo", "kie-runway")
DEFAULT_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
DEFAULT_IMAGE_BYTES = 10 * 1024 * 1024
# Schema keywords a param may carry; the rest of its table is soraq's own (field, send_as).
_SCHEMA_KEYS = (
    "type",
    "enum",
    "const",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "maxItems",
    "minItems",
    "items",
    "description",
)


@dataclass(frozen=True)
class Param:
    name: str  # the request field
    field: str  # the upstream's field
    schema: dict[str, Any]
    send_as: Literal["string"] | None = None

    @property
    def default(self) -> Any:
        return self.schema.get("default")

    def to_upstream(self, value: Any) -> Any:
        return str(value) if self.send_as == "string" else value

    def from_form(self, value: str) -> Any:
        """Type a multipart form value; one that does not parse is left for the schema."""
        kind = self.schema.get("type")
        text = value.strip()
        if kind == "integer" and text.lstrip("-").isdigit():
            return int(text)
        if kind == "number":
            try:
                return float(text) if "." in text else int(text)
            except ValueError:
                return value
        if kind == "boolean" and text.lower() in ("true", "false", "1", "0"):
            return text.lower() in ("true", "1")
        return value


@dataclass(frozen=True)
class ImageRole:
    name: str
    field: str
    shape: Literal["string", "list"]
    min: int
    max: int


@dataclass(frozen=True)
class ModelSpec:
    id: str
    label: str
    kind: str
    upstream: str
    upstream_model: str
    status: Literal["live", "retired"] = "live"
    replaced_by: str | None = None
    progress: Literal["reported", "estimated"] = "estimated"
    typical_seconds: float = 120.0
    prompt_max_length: int = 5000
    prompt_field: str = "prompt"
    image_types: tuple[str, ...] = DEFAULT_IMAGE_TYPES
    image_max_bytes: int = DEFAULT_IMAGE_BYTES
    params: dict[str, Param] = field(default_factory=dict)
    roles: dict[str, ImageRole] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    all_of: tuple[dict[str, Any], ...] = ()
    price: Price | None = None

    @property
    def live(self) -> bool:
        return self.status == "live"

    def estimate(self, params: dict[str, Any]) -> float:
        """Kie credits one task with these params costs, by the catalogue's price table."""
        return self.price.credits(params) if self.price is not None else 0.0

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the model's own fields in a `POST /jobs` body (images go by role)."""
        properties: dict[str, Any] = {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "maxLength": self.prompt_max_length,
                "pattern": r"\S",
                "description": "What the video shows.",
            }
        }
        properties.update({name: dict(p.schema) for name, p in self.params.items()})
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.id,
            "type": "object",
            "properties": properties,
            "required": ["prompt"],
            "additionalProperties": False,
        }
        if self.all_of:
            schema["allOf"] = list(self.all_of)
        return schema

    @cached_property
    def validator(self) -> Draft202012Validator:
        # Compiled once per model (the catalogue is loaded once per process).
        Draft202012Validator.check_schema(self.input_schema)
        return Draft202012Validator(self.input_schema)

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """Check a request's model fields (prompt included); returns the params, defaults filled
        in. Raises InvalidRequest naming the first offending field."""
        error = next(iter(sorted(self.validator.iter_errors(values), key=_error_rank)), None)
        if error is not None:
            raise _invalid(self, values, error)
        params = {name: values[name] for name in self.params if values.get(name) is not None}
        for name, param in self.params.items():
            if name not in params and param.default is not None:
                params[name] = param.default
        return params

    def check_images(self, roles: Iterable[str]) -> None:
        """Each image's role must be one this model takes, in the numbers it takes."""
        counts: dict[str, int] = {}
        for role in roles:
            if role not in self.roles:
                if not self.roles:
                    raise InvalidRequest("images", f"model {self.id} does not take images")
                allowed = ", ".join(self.roles)
                raise InvalidRequest(
                    "images", f"model {self.id} takes no {role} image (it takes: {allowed})"
                )
            counts[role] = counts.get(role, 0) + 1
        for name, spec in self.roles.items():
            given = counts.get(name, 0)
            if given > spec.max:
                raise InvalidRequest(
                    "images", f"model {self.id} takes at most {spec.max} {name} image(s)"
                )
            if given < spec.min:
                raise InvalidRequest(
                    "images",
                    f"model {self.id} needs {spec.min} {name} image(s): give image_url, "
                    "image_base64, an image file or `images`",
                )

    def upstream_input(
        self, prompt: str, params: dict[str, Any], images: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """The upstream's own input: fixed fields, the prompt, params under their upstream
        names, and each image URL in its role's field (several roles may share a list)."""
        body: dict[str, Any] = {**self.fixed, self.prompt_field: prompt}
        for name, value in params.items():
            param = self.params[name]
            body[param.field] = param.to_upstream(value)
        for role_name in ROLES:
            role = self.roles.get(role_name)
            urls = [url for r, url in images if r == role_name]
            if role is None or not urls:
                continue
            if role.shape == "list":
                body.setdefault(role.field, []).extend(urls)
            else:
                body[role.field] = urls[0]
        return body

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "upstream": self.upstream,
            "status": self.status,
            "replaced_by": self.replaced_by,
            "input_schema": self.input_schema if self.live else None,
            "image_roles": {n: {"min": r.min, "max": r.max} for n, r in self.roles.items()},
            "image_types": list(self.image_types) if self.roles else [],
            "image_max_bytes": self.image_max_bytes if self.roles else None,
            "progress": self.progress,
            "price": (
                {
                    "per_second": self.price.per_second,
                    "per_task": self.price.per_task,
                    "factor": self.price.factor,
                    "add": self.price.add,
                    "default_credits": self.estimate(self.validate_defaults()),
                }
                if self.price is not None and self.live
                else None
            ),
        }

    def validate_defaults(self) -> dict[str, Any]:
        return {n: p.default for n, p in self.params.items() if p.default is not None}


def _error_rank(error: ValidationError) -> tuple[int, str]:
    # Report the field the client can fix first: a missing or unknown field, then a value.
    order = {"required": 0, "additionalProperties": 1}.get(str(error.validator), 2)
    return order, ".".join(str(p) for p in error.absolute_path)


def _invalid(spec: ModelSpec, values: dict[str, Any], error: ValidationError) -> InvalidRequest:
    keyword = str(error.validator)
    if keyword == "required":
        missing = [n for n in error.validator_value if n not in (error.instance or {})]
        name = missing[0] if missing else ""
        return InvalidRequest(name, f"is required by model {spec.id}")
    if keyword == "additionalProperties":
        extra = sorted(set(values) - set(spec.input_schema["properties"]))
        name = extra[0] if extra else ""
        return InvalidRequest(name, f"model {spec.id} does not take '{name}'")
    path = [str(p) for p in error.absolute_path]
    name = path[0] if path else ""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword == "enum":
        allowed = ", ".join(str(v) for v in schema.get("enum", []))
        return InvalidRequest(name, f"must be one of {allowed} for model {spec.id}")
    if keyword == "type":
        kind = str(schema.get("type"))
        return InvalidRequest(name, f"must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    if keyword == "pattern" and name == "prompt":
        return InvalidRequest(name, "must not be blank")
    if keyword == "maxLength":
        return InvalidRequest(
            name,
            f"is {len(str(error.instance))} characters; the limit is {schema['maxLength']} "
            f"for model {spec.id}",
        )
    return InvalidRequest(name, f"{error.message} (model {spec.id})")


@dataclass(frozen=True)
class Catalogue:
    models: dict[str, ModelSpec]
    default_text_model: str
    default_image_model: str

    def get(self, model_id: str) -> ModelSpec:
        """A model a new job may use: known and live."""
        spec = self.models.get(model_id)
        if spec is None:
            known = ", ".join(m.id for m in self.models.values() if m.live)
            raise InvalidRequest("model", f"unknown model '{model_id}'; live models: {known}")
        if not spec.live:
            raise InvalidRequest(
                "model",
                f"model {model_id} is retired upstream; use {spec.replaced_by}",
                code="model_retired",
                replaced_by=spec.replaced_by,
            )
        return spec

    def spec(self, model_id: str) -> ModelSpec:
        """Any model, retired ones included (a job made before its model was retired)."""
        return self.models[model_id]

    def default_model(self, *, has_image: bool) -> str:
        return self.default_image_model if has_image else self.default_text_model

    @property
    def live(self) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.live]


def _model(raw: dict[str, Any]) -> ModelSpec:
    params = {}
    for name, table in (raw.get("params") or {}).items():
        schema = {k: v for k, v in table.items() if k in _SCHEMA_KEYS}
        params[name] = Param(name, table.get("field", name), schema, table.get("send_as"))
    roles = {}
    for name, table in (raw.get("roles") or {}).items():
        if name not in ROLES:
            raise ValueError(f"model {raw['id']}: unknown image role {name}")
        roles[name] = ImageRole(
            name, table["field"], table.get("shape", "string"), table["min"], table["max"]
        )
    images = raw.get("images") or {}
    prompt = raw.get("prompt") or {}
    if raw.get("upstream") not in UPSTREAMS:
        raise ValueError(f"model {raw['id']}: unknown upstream {raw.get('upstream')}")
    return ModelSpec(
        id=raw["id"],
        label=raw.get("label", raw["id"]),
        kind=raw["kind"],
        upstream=raw["upstream"],
        upstream_model=raw.get("upstream_model", raw["id"]),
        status=raw.get("status", "live"),
        replaced_by=raw.get("replaced_by"),
        progress=raw.get("progress", "estimated"),
        typical_seconds=float(raw.get("typical_seconds", 120)),
        prompt_max_length=int(prompt.get("max_length", 5000)),
        prompt_field=prompt.get("field", "prompt"),
        image_types=tuple(images.get("types", DEFAULT_IMAGE_TYPES)),
        image_max_bytes=int(images.get("max_bytes", DEFAULT_IMAGE_BYTES)),
        params=params,
        roles=roles,
        fixed=dict(raw.get("fixed") or {}),
        all_of=tuple(raw.get("all_of") or ()),
        price=parse_price(raw["id"], raw.get("price")),
    )


def parse(data: dict[str, Any]) -> Catalogue:
    models = {spec.id: spec for spec in map(_model, data["models"])}
    catalogue = Catalogue(models, data["default_text_model"], data["default_image_model"])
    for spec in models.values():
        if spec.live:
            spec.validator  # noqa: B018 — compile now: a broken schema fails at start-up
            if spec.price is None:
                # Budgets and the balance guard rely on every job having an estimate.
                raise ValueError(f"live model {spec.id} has no price")
        elif spec.replaced_by not in models or not models[spec.replaced_by].live:
            raise ValueError(f"retired model {spec.id} must name a live replaced_by")
    for default in (catalogue.default_text_model, catalogue.default_image_model):
        if default not in models or not models[default].live:
            raise ValueError(f"catalogue default model {default} is not a live model")
    return catalogue


@lru_cache
def get_catalogue() -> Catalogue:
    path = get_settings().model_catalogue or BUNDLED
    with open(path, "rb") as f:
        return parse(tomllib.load(f))
