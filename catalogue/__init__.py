"""The model catalogue: which video models soraq serves, what each accepts, and how a request
becomes the upstream's own body. Models are data (models.toml); this module only reads them.

Each model's accepted input is a JSON Schema, compiled once per model and used both to validate
`POST /jobs` and to show clients what they may send (`GET /models`). May import core/ only."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
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
# The image roles every image-taking model shares (multipart parts `image_<role>` too).
ROLES = ("first_frame", "last_frame", "reference")
UPSTREAMS = ("kie-jobs", "kie-veo", "kie-runway")
DEFAULT_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
DEFAULT_IMAGE_BYTES = 10 * 1024 * 1024
# What a model's input may be, and each kind's defaults where the model's page says nothing
# more precise: the content types soraq recognises by their bytes, and a size in bytes.
INPUT_KINDS = ("image", "video", "audio", "task")
KIND_DEFAULTS: dict[str, tuple[tuple[str, ...], int]] = {
    "image": (DEFAULT_IMAGE_TYPES, DEFAULT_IMAGE_BYTES),
    "video": (("video/mp4", "video/quicktime"), 100 * 1024 * 1024),
    "audio": (("audio/mpeg", "audio/wav", "audio/aac", "audio/mp4", "audio/ogg"), 10 * 1024 * 1024),
    "task": ((), 0),
}
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
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
    # Kie's own enum when soraq offers fewer values on purpose (what drift compares with).
    kie_enum: tuple[Any, ...] | None = None

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
class InputRole:
    """One input a model takes: an image, a video, an audio file or an earlier task of the
    same API family, sent in the upstream's `field` (a string, or a list several roles may
    share, in the model's role order)."""

    name: str
    field: str
    shape: Literal["string", "list"]
    min: int
    max: int
    kind: str = "image"
    types: tuple[str, ...] = DEFAULT_IMAGE_TYPES
    max_bytes: int = DEFAULT_IMAGE_BYTES
    max_seconds: float | None = None  # a video's or an audio file's longest duration
    min_seconds: float | None = None
    # A task role: which models' tasks it continues (soraq model ids, `*` at the end matches
    # a prefix); empty: any model of the same API family. `index_field` takes the input's
    # `index` (which of a task's results), when the upstream has one.
    from_models: tuple[str, ...] = ()
    index_field: str | None = None

    def describe(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"kind": self.kind, "min": self.min, "max": self.max}
        if self.kind != "task":
            shown.update(types=list(self.types), max_bytes=self.max_bytes)
        if self.kind in ("video", "audio"):
            shown.update(max_seconds=self.max_seconds, min_seconds=self.min_seconds)
        if self.kind == "task":
            shown["from_models"] = list(self.from_models)
        return shown

    def continues(self, model_id: str) -> bool:
        if not self.from_models:
            return True
        return any(
            model_id.startswith(p[:-1]) if p.endswith("*") else model_id == p
            for p in self.from_models
        )


ImageRole = InputRole  # the name before inputs could be more than images


@dataclass(frozen=True)
class ModelSpec:
    id: str
    label: str
    kind: str
    upstream: str
    upstream_model: str
    status: Literal["live", "paused", "retired"] = "live"
    replaced_by: str | None = None
    paused_reason: str | None = None
    price_basis: str = "estimate"
    progress: Literal["reported", "estimated"] = "estimated"
    typical_seconds: float = 120.0
    prompt_max_length: int = 5000
    prompt_min_length: int = 1
    prompt_field: str = "prompt"
    # Upscalers, lip-sync and animation models take no prompt, or an optional one.
    prompt_required: bool = True
    prompt_taken: bool = True
    image_types: tuple[str, ...] = DEFAULT_IMAGE_TYPES
    image_max_bytes: int = DEFAULT_IMAGE_BYTES
    params: dict[str, Param] = field(default_factory=dict)
    roles: dict[str, InputRole] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    all_of: tuple[dict[str, Any], ...] = ()
    price: Price | None = None
    # Rules across inputs the schema cannot see (it checks fields, not inputs): the model's
    # modes (groups of roles; roles of two modes cannot be given together), a role that needs
    # another, a choice of which at least one is needed.
    exclusive: tuple[tuple[str, ...], ...] = ()
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)
    one_of_roles: tuple[tuple[str, ...], ...] = ()
    # Kie's fields soraq knowingly leaves out (objects it does not map yet): not drift.
    unmapped: tuple[str, ...] = ()

    @property
    def live(self) -> bool:
        return self.status == "live"

    def estimate(self, params: dict[str, Any]) -> float:
        """Kie credits one task with these params costs, by the catalogue's price table."""
        return self.price.credits(params) if self.price is not None else 0.0

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the model's own fields in a `POST /jobs` body (inputs go by role)."""
        properties: dict[str, Any] = {}
        if self.prompt_taken:
            properties["prompt"] = {
                "type": "string",
                "minLength": self.prompt_min_length,
                "maxLength": self.prompt_max_length,
                "pattern": r"\S",
                "description": "What the video shows.",
            }
        properties.update({name: dict(p.schema) for name, p in self.params.items()})
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.id,
            "type": "object",
            "properties": properties,
            "required": ["prompt"] if self.prompt_taken and self.prompt_required else [],
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

    @property
    def image_roles(self) -> dict[str, InputRole]:
        return {n: r for n, r in self.roles.items() if r.kind == "image"}

    def check_images(self, roles: Iterable[str]) -> None:
        self.check_inputs(roles, field="images")

    def check_inputs(self, roles: Iterable[str], field: str = "inputs") -> None:
        """Each input's role must be one this model takes, in the numbers it takes, and the
        roles given together must be a combination the model allows."""
        counts: dict[str, int] = {}
        for role in roles:
            if role not in self.roles:
                noun = "image" if field == "images" else "input"
                if not self.roles:
                    raise InvalidRequest(field, f"model {self.id} does not take {noun}s")
                allowed = ", ".join(self.roles)
                raise InvalidRequest(
                    field, f"model {self.id} takes no {role} {noun} (it takes: {allowed})"
                )
            counts[role] = counts.get(role, 0) + 1
        for name, spec in self.roles.items():
            given = counts.get(name, 0)
            noun = "image" if spec.kind == "image" else spec.kind
            if given > spec.max:
                raise InvalidRequest(
                    field, f"model {self.id} takes at most {spec.max} {name} {noun}(s)"
                )
            if given < spec.min:
                how = (
                    "give image_url, image_base64, an image file or `inputs`"
                    if spec.kind == "image"
                    else f'give it in `inputs` as {{"role": "{name}", ...}}'
                )
                raise InvalidRequest(
                    field, f"model {self.id} needs {spec.min} {name} {noun}(s): {how}"
                )
        # `exclusive` holds the model's modes: roles of two different modes never go together.
        present = [[r for r in group if counts.get(r)] for group in self.exclusive]
        present = [roles for roles in present if roles]
        if len(present) > 1:
            raise InvalidRequest(
                field,
                f"model {self.id} cannot take {present[0][0]} and {present[1][0]} together",
            )
        for role, needed in self.requires.items():
            if counts.get(role) and not any(counts.get(n) for n in needed):
                raise InvalidRequest(
                    field, f"model {self.id} takes a {role} only with a {' or '.join(needed)}"
                )
        for group in self.one_of_roles:
            if not any(counts.get(r) for r in group):
                raise InvalidRequest(
                    field, f"model {self.id} needs at least one of: {', '.join(group)}"
                )

    def upstream_input(
        self,
        prompt: str,
        params: dict[str, Any],
        images: list[tuple[str, str]],
        indexes: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """The upstream's own input: fixed fields, the prompt, params under their upstream
        names, and each input (a URL, or a task id) in its role's field; roles sharing a list
        go in the model's role order."""
        body: dict[str, Any] = dict(self.fixed)
        if self.prompt_taken and prompt:
            body[self.prompt_field] = prompt
        for name, value in params.items():
            param = self.params[name]
            body[param.field] = param.to_upstream(value)
        for role_name, role in self.roles.items():
            values = [value for r, value in images if r == role_name]
            if not values:
                continue
            if role.shape == "list":
                body.setdefault(role.field, []).extend(values)
            else:
                body[role.field] = values[0]
            if role.index_field and indexes and role_name in indexes:
                body[role.index_field] = indexes[role_name]
        return body

    def describe(self) -> dict[str, Any]:
        images = self.image_roles
        return {
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "upstream": self.upstream,
            "status": self.status,
            "replaced_by": self.replaced_by,
            "paused_reason": self.paused_reason,
            "input_schema": self.input_schema if self.status != "retired" else None,
            "input_roles": {n: r.describe() for n, r in self.roles.items()},
            "image_roles": {n: {"min": r.min, "max": r.max} for n, r in images.items()},
            "image_types": list(self.image_types) if images else [],
            "image_max_bytes": self.image_max_bytes if images else None,
            "progress": self.progress,
            "typical_seconds": self.typical_seconds,
            "price": (
                {
                    "per_second": self.price.per_second,
                    "per_task": self.price.per_task,
                    "factor": self.price.factor,
                    "add": self.price.add,
                    "default_credits": self.estimate(self.validate_defaults()),
                    "basis": self.price_basis,
                }
                if self.price is not None and self.status != "retired"
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
        if spec.status == "retired":
            raise InvalidRequest(
                "model",
                f"model {model_id} is retired upstream; use {spec.replaced_by}",
                code="model_retired",
                replaced_by=spec.replaced_by,
            )
        if not spec.live:
            alternatives = self.alternatives(spec)
            raise InvalidRequest(
                "model",
                f"model {model_id} is unavailable ({spec.paused_reason or 'paused at Kie'}); "
                f"live models of the same kind: {', '.join(alternatives) or 'none'}",
                code="model_unavailable",
                alternatives=alternatives,
            )
        return spec

    def alternatives(
        self, spec: ModelSpec, usable: Callable[[ModelSpec], bool] = lambda m: True
    ) -> list[str]:
        """Live models of the same kind, the same family's first (at most ten)."""
        same = [m for m in self.live if m.kind == spec.kind and m.id != spec.id and usable(m)]
        same.sort(key=lambda m: family(m.id) != family(spec.id))
        return [m.id for m in same][:10]

    def spec(self, model_id: str) -> ModelSpec:
        """Any model, retired ones included (a job made before its model was retired)."""
        return self.models[model_id]

    def default_model(self, *, has_image: bool) -> str:
        return self.default_image_model if has_image else self.default_text_model

    @property
    def live(self) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.live]


def _role(model_id: str, name: str, table: dict[str, Any], images: dict[str, Any]) -> InputRole:
    if not ROLE_NAME.match(name):
        raise ValueError(f"model {model_id}: bad input role name {name!r}")
    kind = table.get("kind", "image")
    if kind not in INPUT_KINDS:
        raise ValueError(f"model {model_id}: role {name} has unknown kind {kind}")
    types, max_bytes = KIND_DEFAULTS[kind]
    if kind == "image":  # the model's `images` table speaks for all its image roles
        types = tuple(images.get("types", types))
        max_bytes = int(images.get("max_bytes", max_bytes))
    return InputRole(
        name,
        table["field"],
        table.get("shape", "string"),
        table["min"],
        table["max"],
        kind=kind,
        types=tuple(table.get("types", types)),
        max_bytes=int(table.get("max_bytes", max_bytes)),
        max_seconds=table.get("max_seconds"),
        min_seconds=table.get("min_seconds"),
        from_models=tuple(table.get("from_models", ())),
        index_field=table.get("index_field"),
    )


def _model(raw: dict[str, Any]) -> ModelSpec:
    params = {}
    for name, table in (raw.get("params") or {}).items():
        schema = {k: v for k, v in table.items() if k in _SCHEMA_KEYS}
        kie_enum = tuple(table["kie_enum"]) if "kie_enum" in table else None
        params[name] = Param(name, table.get("field", name), schema, table.get("send_as"), kie_enum)
    images = raw.get("images") or {}
    roles = {
        name: _role(raw["id"], name, table, images)
        for name, table in (raw.get("roles") or {}).items()
    }
    prompt = raw.get("prompt") or {}
    if raw.get("upstream") not in UPSTREAMS:
        raise ValueError(f"model {raw['id']}: unknown upstream {raw.get('upstream')}")
    rules = raw.get("inputs") or {}
    for group in [*rules.get("exclusive", ()), *rules.get("one_of", ())]:
        unknown = [r for r in group if r not in roles]
        if unknown:
            raise ValueError(f"model {raw['id']}: input rules name unknown roles {unknown}")
    return ModelSpec(
        id=raw["id"],
        label=raw.get("label", raw["id"]),
        kind=raw["kind"],
        upstream=raw["upstream"],
        upstream_model=raw.get("upstream_model", raw["id"]),
        status=raw.get("status", "live"),
        replaced_by=raw.get("replaced_by"),
        paused_reason=raw.get("paused_reason"),
        price_basis=str(raw.get("price_basis", "estimate")),
        progress=raw.get("progress", "estimated"),
        typical_seconds=float(raw.get("typical_seconds", 120)),
        prompt_max_length=int(prompt.get("max_length", 5000)),
        prompt_min_length=int(prompt.get("min_length", 1)),
        prompt_field=prompt.get("field", "prompt"),
        prompt_required=bool(prompt.get("required", True)),
        prompt_taken=bool(prompt.get("taken", True)),
        # What the model's image roles take (the first one's, where a role says more).
        image_types=next(
            (r.types for r in roles.values() if r.kind == "image"),
            tuple(images.get("types", DEFAULT_IMAGE_TYPES)),
        ),
        image_max_bytes=next(
            (r.max_bytes for r in roles.values() if r.kind == "image"),
            int(images.get("max_bytes", DEFAULT_IMAGE_BYTES)),
        ),
        params=params,
        roles=roles,
        fixed=dict(raw.get("fixed") or {}),
        all_of=tuple(raw.get("all_of") or ()),
        price=parse_price(raw["id"], raw.get("price")),
        exclusive=tuple(tuple(g) for g in rules.get("exclusive", ())),
        requires={k: tuple(v) for k, v in (rules.get("requires") or {}).items()},
        one_of_roles=tuple(tuple(g) for g in rules.get("one_of", ())),
        unmapped=tuple(raw.get("unmapped", ())),
    )


def parse(data: dict[str, Any]) -> Catalogue:
    models = {spec.id: spec for spec in map(_model, data["models"])}
    catalogue = Catalogue(models, data["default_text_model"], data["default_image_model"])
    for spec in models.values():
        if spec.status != "retired":
            spec.validator  # noqa: B018 — compile now: a broken schema fails at start-up
            if spec.price is None:
                # Budgets and the balance guard rely on every job having an estimate.
                raise ValueError(f"{spec.status} model {spec.id} has no price")
        elif spec.replaced_by not in models or not models[spec.replaced_by].live:
            raise ValueError(f"retired model {spec.id} must name a live replaced_by")
    for default in (catalogue.default_text_model, catalogue.default_image_model):
        if default not in models or not models[default].live:
            raise ValueError(f"catalogue default model {default} is not a live model")
    return catalogue


def family(model_id: str) -> str:
    """A model's family from its id: kling-2.6/text-to-video → kling."""
    return re.split(r"[-/.]", model_id, maxsplit=1)[0]


@lru_cache
def get_catalogue() -> Catalogue:
    path = get_settings().model_catalogue or BUNDLED
    with open(path, "rb") as f:
        return parse(tomllib.load(f))
