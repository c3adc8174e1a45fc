"""The sandbox's own transcription of Kie's published request schemas (kie_schemas.toml), and
the check that refuses a request breaking them the way Kie does: HTTP 200 with `code` 500
"This field is required" for a missing field, 422 for a wrong value."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).with_name("kie_schemas.toml")

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


@cache
def schemas() -> dict[str, Any]:
    with SCHEMAS.open("rb") as f:
        return tomllib.load(f)


def jobs_schema(model: str) -> dict[str, Any] | None:
    found = schemas()["jobs"].get(model)
    return dict(found) if found is not None else None


def refusal(fields: dict[str, Any], body: dict[str, Any]) -> tuple[int, str] | None:
    """(code, msg) as Kie would refuse `body`, or None when it passes. Stricter than Kie in one
    way: a field Kie does not document is refused too, so that a typo cannot pass unseen."""
    for name, rule in fields.items():
        if rule.get("required") and body.get(name) in (None, ""):
            return 500, f"This field is required: {name}"
    for name, value in body.items():
        rule = fields.get(name)
        if rule is None:
            return 422, f"Unknown parameter: {name}"
        if value is None:
            continue
        kinds = _TYPES[rule["type"]]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return 422, f"{name} must be of type {rule['type']}"
        if "enum" in rule and value not in rule["enum"]:
            return 422, f"{name} must be one of {rule['enum']}"
        if "maxLength" in rule and isinstance(value, str) and len(value) > rule["maxLength"]:
            return 422, f"{name} is longer than {rule['maxLength']} characters"
        if "minLength" in rule and isinstance(value, str) and len(value) < rule["minLength"]:
            return 422, f"{name} is shorter than {rule['minLength']} characters"
        if "maxItems" in rule and isinstance(value, list) and len(value) > rule["maxItems"]:
            return 422, f"{name} has more than {rule['maxItems']} items"
        if "minItems" in rule and isinstance(value, list) and len(value) < rule["minItems"]:
            return 422, f"{name} has fewer than {rule['minItems']} items"
        item_kinds = _TYPES.get(rule.get("items", ""), ())
        if (
            isinstance(value, list)
            and item_kinds
            and not all(isinstance(v, item_kinds) for v in value)
        ):
            return 422, f"{name} must hold {rule['items']} items"
        if "minimum" in rule and isinstance(value, int | float) and value < rule["minimum"]:
            return 422, f"{name} must be at least {rule['minimum']}"
        if "maximum" in rule and isinstance(value, int | float) and value > rule["maximum"]:
            return 422, f"{name} must be at most {rule['maximum']}"
    return None


def veo_refusal(body: dict[str, Any]) -> tuple[int, str] | None:
    """Veo's own rules beyond field types: images per generation type, reference limits."""
    if body.get("aspect_ratio") not in (None, "16:9", "9:16", "Auto"):
        return 422, "Ratio error"
    found = refusal(schemas()["veo"]["generate"], body)
    if found:
        return found
    images = body.get("imageUrls") or []
    kind = body.get("generationType") or (
        "FIRST_AND_LAST_FRAMES_2_VIDEO" if images else "TEXT_2_VIDEO"
    )
    if kind == "TEXT_2_VIDEO" and images:
        return 422, "TEXT_2_VIDEO takes no imageUrls"
    if kind == "FIRST_AND_LAST_FRAMES_2_VIDEO" and not 1 <= len(images) <= 2:
        return 422, "FIRST_AND_LAST_FRAMES_2_VIDEO takes 1 or 2 imageUrls"
    if kind == "REFERENCE_2_VIDEO":
        if body.get("model", "veo3_fast") == "veo3":
            return 422, "REFERENCE_2_VIDEO supports veo3_fast and veo3_lite only"
        if not 1 <= len(images) <= 3:
            return 422, "REFERENCE_2_VIDEO takes 1 to 3 imageUrls"
        if body.get("duration", 8) != 8:
            return 422, "REFERENCE_2_VIDEO supports a duration of 8 seconds only"
    return None


def runway_refusal(body: dict[str, Any]) -> tuple[int, str] | None:
    found = refusal(schemas()["runway"]["generate"], body)
    if found:
        return found
    if body.get("duration") == 10 and body.get("quality") == "1080p":
        return 422, "a 10-second video cannot be 1080p"
    return None
