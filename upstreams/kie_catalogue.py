"""Kie's live catalogue (the endpoints its "kie-models" agent docs read): the models on the
market, each one's request schema and the path to call, its prices and its success rate.
Every answer is Kie's `{code, msg, data}` envelope (KieHTTP reads `code`, not the status), and
every answer is treated as hostile: odd shapes give nothing rather than an error, and sizes
are bounded. Model ids keep their slashes in the path (Kie's docs: not URL-encoded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upstreams.kie_http import KieHTTP

MAX_MODELS = 2000
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_./")


@dataclass(frozen=True)
class LiveModel:
    id: str
    status: str  # active | paused | … as Kie says (lower-cased, bounded)
    type: str = ""


@dataclass(frozen=True)
class LiveSchema:
    path: str
    schema: dict[str, Any] | None  # the request body's JSON Schema (None: not published yet)


@dataclass
class KieCatalogue:
    http: KieHTTP
    seen: dict[str, Any] = field(default_factory=dict)

    def models(self, task_type: str = "video") -> list[LiveModel]:
        data = self.http.call_any("GET", "/api/v1/models", params={"type": task_type})
        items = data if isinstance(data, list) else _first_list(data)
        found = []
        for item in items[:MAX_MODELS]:
            if not isinstance(item, dict):
                continue
            model_id = str(item.get("id") or item.get("model") or "")[:100]
            if not model_id or not set(model_id) <= _ID_CHARS:
                continue
            status = str(item.get("status") or "active").strip().lower()[:20]
            kind = str(item.get("type") or item.get("taskType") or "")[:20]
            found.append(LiveModel(model_id, status, kind))
        return found

    def schema(self, model_id: str) -> LiveSchema:
        data = self.http.call("GET", f"/api/v1/models/{model_id}/schema") or {}
        schema = data.get("schema")
        path = data.get("path")
        return LiveSchema(
            path=str(path)[:200] if isinstance(path, str) else "",
            schema=schema if isinstance(schema, dict) else None,
        )

    def prices(self, model_id: str) -> list[dict[str, Any]] | None:
        """Kie's price cases for a model: [{when: {field: value}, per_second, per_task,
        seconds_field, seconds}], first match first; None when Kie lists none."""
        data = self.http.call("GET", f"/api/v1/models/{model_id}/pricing") or {}
        return price_cases(data.get("cases"))

    def success_rate(self, model_id: str) -> float | None:
        data = self.http.call_any("GET", f"/api/v1/models/{model_id}/success-rate")
        value = data.get("success_rate") if isinstance(data, dict) else data
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        value = float(value)
        if value > 1:  # a percentage
            value /= 100
        return round(value, 4) if 0 <= value <= 1 else None


def _first_list(data: Any) -> list[Any]:
    if isinstance(data, dict):
        for key in ("models", "list", "records", "items"):
            if isinstance(data.get(key), list):
                return list(data[key])
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= 1e6 else None


def price_cases(raw: Any) -> list[dict[str, Any]] | None:
    """Kie's price cases, each checked: a `when` of scalar values, rates that are sane numbers;
    anything else is dropped (a price soraq cannot read is no price)."""
    if not isinstance(raw, list):
        return None
    cases = []
    for item in raw[:500]:
        if not isinstance(item, dict):
            continue
        when = item.get("when") or {}
        if not isinstance(when, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in when.items()
        ):
            continue
        per_second = _number(item.get("per_second", 0))
        per_task = _number(item.get("per_task", 0))
        if per_second is None or per_task is None or per_second == per_task == 0:
            continue
        case: dict[str, Any] = {
            "when": {k[:64]: v for k, v in list(when.items())[:10]},
            "per_second": per_second,
            "per_task": per_task,
        }
        if isinstance(item.get("seconds_field"), str):
            case["seconds_field"] = item["seconds_field"][:64]
        if _number(item.get("seconds")) is not None:
            case["seconds"] = float(item["seconds"])
        if _number(item.get("plus")) is not None:
            case["plus"] = float(item["plus"])
        cases.append(case)
    return cases or None
