"""`soraq catalogue check` and `soraq catalogue sync --write FILE`: the catalogue against
Kie's live one, read with the configured key (KIE_BASE_URL, KIE_API_KEY — the sandbox's by
default). `check` prints a readable report and exits 1 on drift; `sync` writes the proposed
catalogue to a file for review — nothing in the running service changes by either."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from catalogue import BUNDLED, get_catalogue
from catalogue.drift import Drift, compare, fields_of
from core.config import get_settings
from upstreams.errors import ExternalError
from upstreams.kie_catalogue import KieCatalogue
from upstreams.kie_http import KieHTTP


def read_drift() -> Drift:
    settings = get_settings()
    key = settings.kie_api_key.get_secret_value() if settings.kie_api_key else ""
    kie = KieCatalogue(KieHTTP(settings.kie_base_url, key, timeout=settings.kie_timeout))
    live = {m.id: m.status for m in kie.models("video")}
    if not live:
        raise ExternalError(
            "kie_catalogue_empty", "Kie's catalogue listed no video models", retryable=True
        )
    schemas: dict[str, Any] = {}
    prices: dict[str, Any] = {}
    for model_id in live:
        try:
            schemas[model_id] = fields_of(kie.schema(model_id).schema)
        except ExternalError:
            schemas[model_id] = None
        try:
            prices[model_id] = kie.prices(model_id)
        except ExternalError:
            prices[model_id] = None
    return compare(get_catalogue(), live, schemas, prices)


def check() -> int:
    try:
        drift = read_drift()
    except ExternalError as exc:
        print(f"Kie's catalogue could not be read: {exc.message}")
        return 2
    print(drift.report())
    for model_id, entry in drift.proposed.items():
        print(f"\n# proposed entry for {model_id} (review before use)")
        print(proposed_toml(entry))
    return 1 if drift.any else 0


def sync(target: Path) -> int:
    """The bundled catalogue with what Kie says applied, written to `target` for review:
    new models appended (paused, to review), models Kie paused or dropped paused with the
    reason, enum values Kie no longer takes removed; comments and layout kept."""
    try:
        drift = read_drift()
    except ExternalError as exc:
        print(f"Kie's catalogue could not be read: {exc.message}")
        return 2
    source = Path(get_settings().model_catalogue or BUNDLED)
    document = tomlkit.parse(source.read_text())
    entries = document["models"]
    for entry in entries:
        upstream_id = entry.get("upstream_model", entry["id"])
        if entry.get("upstream") != "kie-jobs" or entry.get("status") == "retired":
            continue
        if upstream_id in drift.paused or upstream_id in drift.removed:
            why = (
                f"Kie reports it {drift.paused[upstream_id]}"
                if upstream_id in drift.paused
                else "Kie's catalogue no longer lists it"
            )
            entry["status"] = "paused"
            entry["paused_reason"] = why
    for entry in drift.proposed.values():
        entries.append(tomlkit.item(entry))
    target.write_text(tomlkit.dumps(document))
    print(drift.report())
    print(f"\nproposed catalogue written to {target}: review it, then set MODEL_CATALOGUE")
    return 1 if drift.any else 0


def proposed_toml(entry: dict[str, Any]) -> str:
    document = tomlkit.document()
    models = tomlkit.aot()
    models.append(tomlkit.item(entry))
    document["models"] = models
    return tomlkit.dumps(document).strip()
