"""The catalogue against the sandbox's own transcription of Kie's schemas: a typo in a field
name, an enum value or a forgotten required field fails here, before any job is sent."""

from __future__ import annotations

from typing import Any

import pytest

from catalogue import Catalogue, ModelSpec, get_catalogue
from sandbox.schemas import schemas

LIVE = [spec for spec in get_catalogue().models.values() if spec.live]


def upstream_fields(spec: ModelSpec) -> dict[str, Any]:
    if spec.upstream == "kie-jobs":
        fields = schemas()["jobs"].get(spec.upstream_model)
        assert fields is not None, f"{spec.id}: {spec.upstream_model} is not in Kie's schemas"
        return dict(fields)
    family = {"kie-veo": "veo", "kie-runway": "runway"}[spec.upstream]
    return dict(schemas()[family]["generate"])


def upstream_values(param: Any) -> list[Any]:
    values = param.schema.get("enum") or []
    return [param.to_upstream(v) for v in values]


@pytest.mark.parametrize("spec", LIVE, ids=lambda s: s.id)
def test_every_field_the_catalogue_sends_is_one_kie_documents(spec: ModelSpec) -> None:
    fields = upstream_fields(spec)
    sent = {*spec.fixed, *(p.field for p in spec.params.values())}
    sent |= {role.field for role in spec.roles.values()}
    sent |= {role.index_field for role in spec.roles.values() if role.index_field}
    if spec.prompt_taken:
        sent.add(spec.prompt_field)
    unknown = sorted(name for name in sent if name not in fields)
    assert not unknown, f"{spec.id} sends fields Kie does not document: {unknown}"


@pytest.mark.parametrize("spec", LIVE, ids=lambda s: s.id)
def test_enums_and_types_agree_with_kie(spec: ModelSpec) -> None:
    fields = upstream_fields(spec)
    for param in spec.params.values():
        rule = fields[param.field]
        kind = "string" if param.send_as == "string" else param.schema.get("type")
        compatible = {rule["type"]} | ({"number"} if rule["type"] == "number" else set())
        if rule["type"] == "number":
            compatible.add("integer")
        assert kind in compatible, f"{spec.id}.{param.name}: {kind} vs Kie's {rule['type']}"
        if "enum" in rule and "enum" in param.schema:
            extra = [v for v in upstream_values(param) if v not in rule["enum"]]
            assert not extra, f"{spec.id}.{param.name}: {extra} not in Kie's {rule['enum']}"
        if param.default is not None and "enum" in rule:
            assert param.to_upstream(param.default) in rule["enum"]
    for name, value in spec.fixed.items():
        if "enum" in fields[name]:
            assert value in fields[name]["enum"], f"{spec.id}: fixed {name}={value}"


@pytest.mark.parametrize("spec", LIVE, ids=lambda s: s.id)
def test_every_field_kie_requires_is_always_sent(spec: ModelSpec) -> None:
    fields = upstream_fields(spec)
    always = {*spec.fixed}
    if spec.prompt_taken and spec.prompt_required:
        always.add(spec.prompt_field)
    always |= {p.field for p in spec.params.values() if p.default is not None}
    always |= {r.field for r in spec.roles.values() if r.min >= 1}
    missing = sorted(n for n, rule in fields.items() if rule.get("required") and n not in always)
    assert not missing, f"{spec.id} can omit fields Kie requires: {missing}"


@pytest.mark.parametrize("spec", LIVE, ids=lambda s: s.id)
def test_the_prompt_limit_is_no_looser_than_kies(spec: ModelSpec) -> None:
    fields = upstream_fields(spec)
    assert spec.prompt_taken == (spec.prompt_field in fields), spec.id
    if not spec.prompt_taken:
        return
    rule = fields[spec.prompt_field]
    if rule.get("maxLength") is not None:
        assert spec.prompt_max_length <= rule["maxLength"]
    assert spec.prompt_min_length >= rule.get("minLength", 1)
    if rule.get("required"):
        assert spec.prompt_required, spec.id


def test_there_are_enough_live_models_across_families() -> None:
    catalogue: Catalogue = get_catalogue()
    assert len(LIVE) >= 15
    assert {spec.upstream for spec in LIVE} == {"kie-jobs", "kie-veo", "kie-runway"}
    families = {spec.id.split("/")[0].split("-")[0].split(".")[0] for spec in LIVE}
    assert len(families) >= 6, families
    for model in ("sora-2-text-to-video", "sora-2-image-to-video"):
        assert catalogue.models[model].status == "retired"


def test_kling_takes_jpeg_and_png_only_and_a_1000_character_prompt() -> None:
    for model in ("kling-2.6/text-to-video", "kling-2.6/image-to-video"):
        spec = get_catalogue().models[model]
        assert spec.prompt_max_length == 1000
    assert get_catalogue().models["kling-2.6/image-to-video"].image_types == (
        "image/jpeg",
        "image/png",
    )


def test_validators_are_compiled_once_per_model() -> None:
    spec = get_catalogue().models["kling-2.6/text-to-video"]
    assert spec.validator is spec.validator


def test_the_readme_model_table_is_generated_from_the_catalogue() -> None:
    from catalogue.table import END, README, START, markdown, readme_with_table

    text = README.read_text()
    assert START in text
    assert END in text
    assert readme_with_table(text, markdown()) == text, (
        "README's model table is stale: run `python -m catalogue.table --write`"
    )
