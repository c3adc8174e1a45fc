"""The catalogue against Kie's live one: which models Kie added, removed or paused, which
fields, enum values and limits changed, whose price moved — and, for a new model, an entry
generated from Kie's schema, ready to review. Pure: the caller fetches Kie's answers
(upstreams.kie_catalogue) and decides what to do with the report (`soraq catalogue check`,
the worker's daily check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalogue import Catalogue, ModelSpec
from catalogue.pricing import case_credits

# Kie's market ids for video models look like these; its image, audio and chat models are
# not soraq's (the live list is asked for `type=video`, and this keeps a stray one out).
ACTIVE = ("active", "live", "online", "available", "normal")
_RULE_KEYS = ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "maxItems")
MAX_ENUM = 200  # values kept of one field's enum in Kie's schema
PRICE_TOLERANCE = 0.01  # a relative difference below this is rounding, not a move


def fields_of(schema: dict[str, Any] | None) -> dict[str, dict[str, Any]] | None:
    """A request schema's `input` fields as rules ({name: {type, required, enum, …}}): the
    schema of the whole body (properties.input) or of the input alone."""
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    if not isinstance(props, dict):
        return None
    nested = props.get("input")
    target: dict[str, Any] = nested if isinstance(nested, dict) else schema
    inner = target.get("properties")
    if not isinstance(inner, dict):
        return None
    required = target.get("required")
    required = set(required) if isinstance(required, list) else set()
    rules: dict[str, dict[str, Any]] = {}
    for name, raw in list(inner.items())[:200]:
        if not isinstance(name, str) or not isinstance(raw, dict):
            continue
        rule = {k: raw[k] for k in _RULE_KEYS if k in raw}
        if isinstance(rule.get("enum"), list):  # Kie's answer is hostile input: bounded
            rule["enum"] = [v for v in rule["enum"][:MAX_ENUM] if isinstance(v, str | int | float)]
        if isinstance(raw.get("items"), dict) and isinstance(raw["items"].get("type"), str):
            rule["items"] = raw["items"]["type"]
        if name in required:
            rule["required"] = True
        rules[name[:64]] = rule
    return rules


def json_schema_of(fields: dict[str, dict[str, Any]], model_id: str) -> dict[str, Any]:
    """The request body's JSON Schema for a model with these field rules (what Kie's schema
    endpoint serves; the sandbox builds its answers with it)."""
    properties: dict[str, Any] = {}
    for name, rule in fields.items():
        prop = {k: v for k, v in rule.items() if k in _RULE_KEYS}
        if "items" in rule:
            prop["items"] = {"type": rule["items"]}
        properties[name] = prop
    required = sorted(n for n, r in fields.items() if r.get("required"))
    return {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "enum": [model_id]},
            "callBackUrl": {"type": "string"},
            "input": {"type": "object", "properties": properties, "required": required},
        },
    }


@dataclass
class Drift:
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    paused: dict[str, str] = field(default_factory=dict)  # model → Kie's status word
    resumed: list[str] = field(default_factory=list)  # paused in the bundle, active at Kie
    changes: dict[str, list[str]] = field(default_factory=dict)  # model → what changed
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)  # bundled, Kie's
    proposed: dict[str, dict[str, Any]] = field(default_factory=dict)  # new model → entry

    @property
    def any(self) -> bool:
        return bool(self.new or self.removed or self.paused or self.changes or self.prices)

    def as_dict(self) -> dict[str, Any]:
        return {
            "new": self.new,
            "removed": self.removed,
            "paused": self.paused,
            "resumed": self.resumed,
            "changes": self.changes,
            "prices": {m: {"bundled": b, "kie": k} for m, (b, k) in self.prices.items()},
        }

    def summary(self) -> str:
        parts = []
        for label, items in (
            ("new", self.new),
            ("removed", self.removed),
            ("paused", list(self.paused)),
            ("changed", list(self.changes)),
            ("price moved", list(self.prices)),
        ):
            if items:
                parts.append(f"{len(items)} {label}")
        return ", ".join(parts) or "in step with Kie"

    def report(self) -> str:
        lines = [f"Catalogue against Kie's: {self.summary()}."]
        for model in self.new:
            lines.append(f"+ new at Kie: {model} (an entry is proposed below)")
        for model in self.removed:
            lines.append(f"- gone from Kie: {model}")
        for model, status in self.paused.items():
            lines.append(f"! paused at Kie: {model} ({status})")
        for model in self.resumed:
            lines.append(f"~ active at Kie, paused in the catalogue: {model}")
        for model, changes in self.changes.items():
            for change in changes:
                lines.append(f"~ {model}: {change}")
        for model, (bundled, kie) in self.prices.items():
            lines.append(f"$ {model}: {bundled:g} credits bundled, {kie:g} at Kie (defaults)")
        return "\n".join(lines)


def compare(
    catalogue: Catalogue,
    live: dict[str, str],
    schemas: dict[str, dict[str, dict[str, Any]] | None],
    prices: dict[str, list[dict[str, Any]] | None] | None = None,
) -> Drift:
    """`live`: Kie's video models and their status; `schemas`: each one's input fields (as
    fields_of gives them; None when Kie publishes none); `prices`: each one's price cases."""
    drift = Drift()
    ours = {m.upstream_model: m for m in catalogue.models.values() if m.upstream == "kie-jobs"}
    for model_id, status in sorted(live.items()):
        spec = ours.get(model_id)
        if spec is None:
            drift.new.append(model_id)
            drift.proposed[model_id] = proposed_entry(model_id, schemas.get(model_id))
            continue
        if spec.status == "retired":
            continue
        if status not in ACTIVE:
            drift.paused[model_id] = status
        elif spec.status == "paused":
            drift.resumed.append(model_id)
        fields = schemas.get(model_id)
        if fields is not None and spec.status == "live":
            changes = field_changes(spec, fields)
            if changes:
                drift.changes[model_id] = changes
        cases = (prices or {}).get(model_id)
        if cases and spec.price is not None and spec.status == "live":
            defaults = spec.validate_defaults()
            body = spec.upstream_input("p", defaults, [])
            kie = case_credits(cases, body)
            bundled = spec.estimate(defaults)
            if kie is not None and abs(kie - bundled) > PRICE_TOLERANCE * max(kie, bundled, 1):
                drift.prices[model_id] = (bundled, kie)
    for model_id, spec in ours.items():
        if spec.status != "retired" and model_id not in live:
            drift.removed.append(model_id)
    return drift


def field_changes(spec: ModelSpec, fields: dict[str, dict[str, Any]]) -> list[str]:
    """What Kie's fields say that the model's entry does not: a field it sends that Kie no
    longer takes, a field Kie now requires, enum values gone or added, a tighter limit."""
    changes: list[str] = []
    sent: dict[str, Any] = {p.field: p for p in spec.params.values()}
    roles = {r.field for r in spec.roles.values()}
    if spec.prompt_taken:
        roles.add(spec.prompt_field)
    for name in sorted(set(sent) | roles | set(spec.fixed)):
        if name not in fields:
            changes.append(f"sends {name}, which Kie no longer takes")
    always = set(spec.fixed) | {p.field for p in spec.params.values() if p.default is not None}
    always |= {r.field for r in spec.roles.values() if r.min >= 1}
    if spec.prompt_taken and spec.prompt_required:
        always.add(spec.prompt_field)
    for name, rule in sorted(fields.items()):
        if rule.get("required") and name not in always:
            changes.append(f"Kie now requires {name}")
        param = sent.get(name)
        if param is not None and "enum" in rule and isinstance(rule["enum"], list):
            offered = param.kie_enum or param.schema.get("enum", [])
            ours = [param.to_upstream(v) for v in offered]
            gone = [v for v in ours if v not in rule["enum"]]
            added = [v for v in rule["enum"] if v not in ours]
            if gone:
                changes.append(f"{name}: Kie no longer takes {gone}")
            if added and ours:
                changes.append(f"{name}: Kie also takes {added}")
        if name == spec.prompt_field and spec.prompt_taken:
            limit = rule.get("maxLength")
            if isinstance(limit, int) and limit < spec.prompt_max_length:
                changes.append(f"{name}: Kie's limit is {limit}, ours {spec.prompt_max_length}")
        if param is not None:
            for bound in ("minimum", "maximum"):
                ours_bound = param.schema.get(bound)
                theirs = rule.get(bound)
                if isinstance(theirs, int | float) and isinstance(ours_bound, int | float):
                    looser = ours_bound < theirs if bound == "minimum" else ours_bound > theirs
                    if looser:
                        changes.append(f"{name}: Kie's {bound} is {theirs}, ours {ours_bound}")
        known = name in sent or name in roles or name in spec.fixed or name in spec.unmapped
        if not known and name not in {r.index_field for r in spec.roles.values()}:
            if not rule.get("required"):
                changes.append(f"Kie has a new field {name} ({rule.get('type', '?')})")
    return changes


# Kie's field names for inputs, and the soraq role and kind each becomes in a proposed entry.
INPUT_FIELDS: dict[str, tuple[str, str]] = {
    "image_url": ("first_frame", "image"),
    "image_urls": ("first_frame", "image"),
    "first_frame_url": ("first_frame", "image"),
    "last_frame_url": ("last_frame", "image"),
    "end_image_url": ("last_frame", "image"),
    "tail_image_url": ("last_frame", "image"),
    "reference_image_urls": ("reference", "image"),
    "reference_image": ("reference", "image"),
    "video_url": ("video", "video"),
    "video_urls": ("video", "video"),
    "reference_video_urls": ("reference_video", "video"),
    "audio_url": ("audio", "audio"),
    "reference_audio_urls": ("reference_audio", "audio"),
    "task_id": ("task", "task"),
}


def proposed_entry(model_id: str, fields: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """A catalogue entry for a model Kie added, from its schema: to review (its kind, price
    and typical time are guesses until someone reads the model's page), so it comes paused."""
    entry: dict[str, Any] = {
        "id": model_id,
        "label": model_id,
        "kind": _kind(model_id),
        "upstream": "kie-jobs",
        "status": "paused",
        "paused_reason": "proposed by `soraq catalogue sync`: review its kind, roles and price",
        "typical_seconds": 120,
        "price": {"per_second": 10},
        "price_basis": "estimate",
    }
    if not fields:
        entry["paused_reason"] = "Kie publishes no schema for it yet"
        return entry
    prompt = fields.get("prompt")
    if prompt is None:
        entry["prompt"] = {"taken": False}
    else:
        entry["prompt"] = {"max_length": int(prompt.get("maxLength") or 5000)}
        if not prompt.get("required"):
            entry["prompt"]["required"] = False
    roles: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for name, rule in fields.items():
        if name == "prompt":
            continue
        if name in INPUT_FIELDS:
            role, kind = INPUT_FIELDS[name]
            shape = "list" if rule.get("type") == "array" else "string"
            spec: dict[str, Any] = {"field": name, "shape": shape}
            if kind != "image":
                spec["kind"] = kind
            spec["min"] = 1 if rule.get("required") else 0
            spec["max"] = int(rule.get("maxItems") or 1)
            roles.setdefault(role, spec)
            continue
        if rule.get("type") in ("array", "object"):
            continue
        keys = ("type", "enum", "minimum", "maximum", "maxLength")
        param: dict[str, Any] = {k: rule[k] for k in keys if k in rule}
        if rule.get("required") and rule.get("enum"):
            param["default"] = rule["enum"][0]
        params[name] = param
    if roles:
        entry["roles"] = roles
    if params:
        entry["params"] = params
    return entry


def _kind(model_id: str) -> str:
    for word, kind in (
        ("image-to-video", "image-to-video"),
        ("reference-to-video", "reference-to-video"),
        ("video-to-video", "video-to-video"),
        ("extend", "extend"),
        ("upscale", "upscale"),
        ("lip-sync", "lip-sync"),
        ("avatar", "avatar"),
        ("motion", "motion-control"),
        ("edit", "video-edit"),
    ):
        if word in model_id:
            return kind
    return "text-to-video"
