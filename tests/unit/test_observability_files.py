"""deploy/grafana/soraq.json imports as a dashboard and deploy/prometheus/alerts.yml loads as
rules: every PromQL expression parses, and each names soraq's metrics only (whether /metrics
serves them is tests/integration/test_observability.py)."""

from __future__ import annotations

import pytest

from tests.observability_files import alert_rules, dashboard, expressions, metric_names


def test_the_dashboard_is_importable_with_a_datasource_to_pick() -> None:
    board = dashboard()
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    assert board["uid"] == "soraq-overview"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("expr", expressions())
def test_every_expression_parses_and_names_soraq_metrics(expr: str) -> None:
    names = metric_names(expr)
    assert names, expr
    assert all(name.startswith("soraq_") for name in names), names


def test_every_alert_has_what_an_on_call_person_needs() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert rule["for"]


def test_the_alerts_cover_what_the_issue_lists() -> None:
    named = {rule["alert"] for rule in alert_rules()}
    assert {
        "SoraqAccountPaused",
        "SoraqKieBalanceLow",
        "SoraqJobsStuckPastLease",
        "SoraqWebhookFailureRate",
        "SoraqQueueGrowing",
        "SoraqSweepMissing",
    } <= named


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        metric_names("sum(rate(soraq_jobs_total[5m])")
