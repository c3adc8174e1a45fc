"""The PromQL in deploy/grafana/soraq.json and deploy/prometheus/alerts.yml, parsed (with
promql-parser, the Prometheus parser's Rust port), and the soraq metrics they name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "soraq.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def expressions() -> list[str]:
    """Every PromQL expression of both files ($__range, a Grafana variable, read as 1h)."""
    panels = [
        target["expr"].replace("$__range", "1h")
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    ]
    return panels + [rule["expr"] for rule in alert_rules()]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (raises ValueError when it does not parse)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names
