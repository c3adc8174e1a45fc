"""The model catalogue: which Kie models soraq serves and what each one's `input` takes.

Validation of a request and the Kie request body are both derived from it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from soraq.config import get_settings

BUNDLED = Path(__file__).with_name("catalogue.toml")
ParamType = Literal["string", "integer", "boolean"]
_PY_TYPES: dict[str, type] = {"string": str, "integer": int, "boolean": bool}


class InvalidRequest(ValueError):
    """A request the catalogue refuses; `field` names the offending request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Param:
    name: str
    field: str
    type: ParamType
    choices: tuple[Any, ...] | None = None
    default: Any = None
    send_as: Literal["string"] | None = None

    def check(self, model: str, value: Any) -> Any:
        python_type = _PY_TYPES[self.type]
        # bool is an int in Python; a JSON `true` is no duration.
        if not isinstance(value, python_type) or (
            self.type == "integer" and isinstance(value, bool)
        ):
            raise InvalidRequest(self.name, f"must be a {self.type}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(choice) for choice in self.choices)
            raise InvalidRequest(self.name, f"must be one of {allowed} for model {model}")
        return value

    def from_form(self, value: str) -> Any:
        """Type a multipart form value; one that does not parse is left for check() to refuse."""
        if self.type == "integer" and value.strip().lstrip("-").isdigit():
            return int(value)
        if self.type == "boolean" and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        return value

    def to_kie(self, value: Any) -> Any:
        return str(value) if self.send_as == "string" else value


@dataclass(frozen=True)
class ImageSpec:
    field: str
    list: bool
    required: bool


@dataclass(frozen=True)
class ModelSpec:
    id: str
    kind: str
    label: str
    params: dict[str, Param]
    image: ImageSpec | None = None
    prompt_max_length: int | None = None

    def normalize(self, params: dict[str, Any], *, has_image: bool) -> dict[str, Any]:
        """Check the client's params against this model; returns them with defaults filled in."""
        for name in params:
            if name not in self.params:
                raise InvalidRequest(name, f"model {self.id} does not take '{name}'")
        if has_image and self.image is None:
            raise InvalidRequest("image", f"model {self.id} does not take an image")
        if not has_image and self.image is not None and self.image.required:
            raise InvalidRequest(
                "image", f"model {self.id} needs an image (image_url, image_base64 or image)"
            )
        normalized = {}
        for name, param in self.params.items():
            if params.get(name) is not None:
                normalized[name] = param.check(self.id, params[name])
            elif param.default is not None:
                normalized[name] = param.default
        return normalized

    def kie_input(
        self, prompt: str, params: dict[str, Any], image_url: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt}
        for name, value in params.items():
            param = self.params[name]
            body[param.field] = param.to_kie(value)
        if image_url is not None and self.image is not None:
            body[self.image.field] = [image_url] if self.image.list else image_url
        return body

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "image": None if self.image is None else {"required": self.image.required},
            "params": {
                name: {
                    "type": p.type,
                    "choices": p.choices and list(p.choices),
                    "default": p.default,
                }
                for name, p in self.params.items()
            },
        }


@dataclass(frozen=True)
class Catalogue:
    models: dict[str, ModelSpec]
    default_text_model: str
    default_image_model: str

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            known = ", ".join(self.models)
            raise InvalidRequest("model", f"unknown model '{model_id}'; known: {known}") from None

    def default_model(self, *, has_image: bool) -> str:
        return self.default_image_model if has_image else self.default_text_model


def _param(raw: dict[str, Any]) -> Param:
    choices = tuple(raw["choices"]) if "choices" in raw else None
    inferred = (
        {bool: "boolean", int: "integer", str: "string"}[type(choices[0])] if choices else None
    )
    return Param(
        name=raw["name"],
        field=raw.get("field", raw["name"]),
        type=raw.get("type", inferred or "string"),
        choices=choices,
        default=raw.get("default"),
        send_as=raw.get("send_as"),
    )


def parse(data: dict[str, Any]) -> Catalogue:
    models = {}
    for raw in data["models"]:
        image = raw.get("image")
        models[raw["id"]] = ModelSpec(
            id=raw["id"],
            kind=raw["kind"],
            label=raw.get("label", raw["id"]),
            params={p["name"]: _param(p) for p in raw.get("params", [])},
            image=ImageSpec(image["field"], image.get("list", False), image.get("required", True))
            if image
            else None,
            prompt_max_length=raw.get("prompt_max_length"),
        )
    catalogue = Catalogue(models, data["default_text_model"], data["default_image_model"])
    for default in (catalogue.default_text_model, catalogue.default_image_model):
        if default not in models:
            raise ValueError(f"catalogue default model {default} is not in the catalogue")
    return catalogue


@lru_cache
def get_catalogue() -> Catalogue:
    path = get_settings().model_catalogue or BUNDLED
    with open(path, "rb") as f:
        return parse(tomllib.load(f))
