"""Prices and usage: every live model has a price, the catalogue's price table agrees with the
sandbox's own transcription of Kie's price list for every value a client may send, and a
job's usage reads as its state says."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from catalogue import ModelSpec, get_catalogue, parse
from catalogue.pricing import parse_price
from models.job import Job, JobStatus
from models.spend import day_start, month_start, next_month
from sandbox.account import price as sandbox_price
from upstreams.kie_http import callback_credits, credit_amount
from views.jobs import JobUsage

LIVE = [spec for spec in get_catalogue().models.values() if spec.live]
FAMILY = {"kie-jobs": "jobs", "kie-veo": "veo", "kie-runway": "runway"}


def variants(spec: ModelSpec) -> list[dict[str, Any]]:
    """The defaults, then every value of every priced field combined with every other's."""
    prompt = {"prompt": "a prompt"} if spec.prompt_taken else {}
    defaults = spec.validate(prompt)
    axes: dict[str, list[Any]] = {}
    for name, param in spec.params.items():
        if "enum" in param.schema:
            axes[name] = list(param.schema["enum"])
        elif param.schema.get("type") == "integer" and name == "duration":
            axes[name] = list(range(param.schema["minimum"], param.schema["maximum"] + 1))
        elif param.schema.get("type") == "boolean" and param.default is not None:
            axes[name] = [True, False]
    names = sorted(axes)
    out = []
    for combo in itertools.product(*(axes[n] for n in names)):
        values = {**prompt, **dict(zip(names, combo, strict=True))}
        try:
            out.append(spec.validate(values))
        except Exception:
            continue  # a combination the model refuses (Runway's 10 s at 1080p)
    return [defaults, *out]


@pytest.mark.parametrize("spec", LIVE, ids=lambda s: s.id)
def test_every_live_model_has_a_price_kie_agrees_with(spec: ModelSpec) -> None:
    assert spec.price is not None
    checked = 0
    for params in variants(spec):
        body = spec.upstream_input("p", params, [])
        expected = sandbox_price(FAMILY[spec.upstream], spec.upstream_model, body)
        assert expected is not None, f"{spec.id}: the sandbox lists no price for {body}"
        assert spec.estimate(params) == pytest.approx(expected), f"{spec.id} {params}"
        checked += 1
    assert checked >= 1


def test_a_live_model_without_a_price_is_refused_at_start_up() -> None:
    raw = {
        "default_text_model": "m",
        "default_image_model": "m",
        "models": [{"id": "m", "kind": "text-to-video", "upstream": "kie-jobs"}],
    }
    with pytest.raises(ValueError, match="has no price"):
        parse(raw)
    raw["models"][0]["price"] = {"per_second": 2}
    assert parse(raw).get("m").estimate({"duration": 5}) == 10


@pytest.mark.parametrize(
    "raw",
    [{"per_second": -1}, {}, {"per_second": 1, "factor": {"mode": {"pro": -2}}}, {"per_sec": 1}],
)
def test_bad_price_entries_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="model m"):
        parse_price("m", raw)


def test_prices_follow_the_parameters() -> None:
    catalogue = get_catalogue()
    kling = catalogue.get("kling-2.6/text-to-video")
    assert kling.estimate({"duration": 5, "sound": False}) == 55
    assert kling.estimate({"duration": 10, "sound": True}) == 220
    veo = catalogue.get("veo3.1-fast/text-to-video")
    assert veo.estimate({"duration": 8, "resolution": "720p"}) == 60
    assert veo.estimate({"duration": 8, "resolution": "1080p"}) == 65


def _job(status: JobStatus, **values: Any) -> Job:
    return Job(id="job_x", status=status, model="m", input={}, **values)


def test_usage_reads_as_the_job_stands() -> None:
    running = JobUsage.of(_job(JobStatus.GENERATING, credits_estimated=60, credits_reserved=60))
    assert running.credits_charged is None
    assert running.usd_estimated == 0.3
    done = JobUsage.of(_job(JobStatus.SUCCEEDED, credits_estimated=60, credits_reserved=60))
    assert (done.credits_charged, done.credits_charged_source) == (60, "estimate")
    reported = JobUsage.of(
        _job(JobStatus.SUCCEEDED, credits_estimated=60, credits_reported=58, credits_reserved=58)
    )
    assert (reported.credits_charged, reported.credits_charged_source) == (58, "kie")
    assert reported.usd_estimated == 0.29
    never_sent = JobUsage.of(_job(JobStatus.FAILED, credits_estimated=60, credits_reserved=0))
    assert (never_sent.credits_charged, never_sent.credits_charged_source) == (0, "not_submitted")
    assert never_sent.usd_source == "credit_rate"


def test_a_job_made_at_fal_shows_fals_dollars() -> None:
    at_fal = {"credits_estimated": 60, "credits_reserved": 60, "provider_usd": 1.2}
    made = JobUsage.of(_job(JobStatus.SUCCEEDED, **at_fal))
    assert (made.usd_estimated, made.usd_source) == (1.2, "fal")
    assert made.credits_charged == 60  # budgets stay in credits
    failed = JobUsage.of(_job(JobStatus.FAILED, **at_fal))
    assert (failed.usd_estimated, failed.usd_source) == (0.0, "fal")  # fal bills what it made


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12.0),
        ("7.5", 7.5),
        (-1, None),
        (float("nan"), None),
        (True, None),
        ("x", None),
        (1e12, None),
        (None, None),
    ],
)
def test_credit_figures_from_kie_are_checked(value: Any, expected: float | None) -> None:
    assert credit_amount(value) == expected


def test_callback_credits_are_read_where_kie_puts_them() -> None:
    assert callback_credits({"data": {"consumeCredits": 10, "remainedCredits": "990"}}) == (
        (10.0, "callback.consumeCredits"),
        990.0,
    )
    assert callback_credits({"data": {"creditsConsumed": "12.5"}}) == (
        (12.5, "callback.creditsConsumed"),
        None,
    )
    assert callback_credits({"consumeCredits": 3}) == ((3.0, "callback.consumeCredits"), None)
    assert callback_credits(["nope"]) == (None, None)
    # An absurd figure under one name does not hide a sane one under the other.
    assert callback_credits({"data": {"creditsConsumed": -1, "consumeCredits": 7}}) == (
        (7.0, "callback.consumeCredits"),
        None,
    )


@pytest.mark.parametrize("field", ["creditsConsumed", "consumeCredits"])
def test_every_family_reads_the_charge_from_its_record_under_either_name(field: str) -> None:
    from upstreams import kie_jobs, kie_runway, kie_veo

    jobs = kie_jobs.task_info(
        {"state": "success", "resultJson": '{"resultUrls": ["https://x/v.mp4"]}', field: 95}
    )
    veo = kie_veo.task_info(
        {"successFlag": 1, "response": {"resultUrls": ["https://x/v.mp4"]}, field: "60"}
    )
    runway = kie_runway.task_info(
        {"state": "success", "videoInfo": {"videoUrl": "https://x/v.mp4"}, field: 12}
    )
    assert jobs.charge == (95.0, f"recordInfo.{field}")
    assert veo.charge == (60.0, f"recordInfo.{field}")
    assert runway.charge == (12.0, f"recordInfo.{field}")


def test_budget_periods_are_utc_calendar_days_and_months() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert day_start(now) == datetime(2026, 12, 31, tzinfo=UTC)
    assert month_start(now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month(month_start(now)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_usage_reports_refuse_odd_periods_and_keep_formulas_out_of_csv() -> None:
    from datetime import date

    from api.usage import as_csv, period
    from core.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="after"):
        period(date(2026, 11, 2), date(2026, 11, 1))
    with pytest.raises(InvalidRequest, match="366"):
        period(date(2024, 1, 1), date(2026, 1, 1))
    start, end = period(None, None, datetime(2026, 11, 29, 12, tzinfo=UTC))
    assert (start.date(), end.date()) == (date(2026, 10, 31), date(2026, 11, 30))
    body = {
        "group_by": "client",
        "groups": [
            {
                "key": '=HYPERLINK("http://x")',
                "jobs": 1,
                "credits_estimated": 1.0,
                "credits_charged": 1.0,
                "credits_reserved": 0.0,
                "usd": 0.01,
            },
            {
                "key": "acme",
                "jobs": 2,
                "credits_estimated": 2.0,
                "credits_charged": 2.0,
                "credits_reserved": 0.0,
                "usd": 0.02,
            },
        ],
    }
    lines = as_csv(body).splitlines()
    assert lines[0] == "client,jobs,credits_estimated,credits_charged,credits_reserved,usd"
    assert lines[1].startswith("\"'=HYPERLINK")  # quoted: a spreadsheet shows it as text
    assert lines[2].startswith("acme,2,")
