"""What the contract fuzzer found (issue 24, items 20–23), each answered as the OpenAPI
document says: 422 for a value outside it, never a 500, and the 405's Allow header complete."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.test_admin_api import ADMIN


@pytest.mark.parametrize("route", ["/usage", "/admin/usage"])
@pytest.mark.parametrize("to", ["0001-01-01", "9999-12-31", "0", "1700000000", "2026-13-01"])
def test_usage_dates_outside_the_calendar_or_not_dates_are_422s(
    client: TestClient, route: str, to: str
) -> None:
    headers = ADMIN if route.startswith("/admin") else {}
    response = client.get(route, params={"to": to}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["field"] in ("to", "query.to")


def test_a_usage_report_still_takes_an_ordinary_day(client: TestClient) -> None:
    assert client.get("/usage", params={"to": "2026-12-01"}).status_code == 200


@pytest.mark.parametrize("client_filter", [None, "nobody-by-this-name"])
@pytest.mark.parametrize("bound", ["0.0", "0", "1700000000"])
def test_admin_time_bounds_must_be_iso_8601_whatever_the_client_filter(
    app_client: TestClient, client_filter: str | None, bound: str
) -> None:
    params = {"created_before": bound}
    if client_filter:
        params["client"] = client_filter
    response = app_client.get("/admin/jobs", params=params, headers=ADMIN)
    assert response.status_code == 422, response.text


def test_admin_time_bounds_past_the_range_are_checked_even_for_nobody(
    app_client: TestClient,
) -> None:
    response = app_client.get(
        "/admin/jobs",
        params={"created_before": "1900-01-01T00:00:00Z", "client": "nobody-by-this-name"},
        headers=ADMIN,
    )
    assert response.status_code == 422, response.text


def test_a_405_names_every_method_of_the_path(app_client: TestClient) -> None:
    response = app_client.put("/jobs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_the_stats_window_pattern_is_in_the_schema(app_client: TestClient) -> None:
    document = app_client.get("/openapi.json").json()
    [window] = [
        p for p in document["paths"]["/admin/stats"]["get"]["parameters"] if p["name"] == "window"
    ]
    assert window["schema"]["pattern"] == r"^(\d{1,6})([smhd])$"
    assert (
        app_client.get("/admin/stats", params={"window": "7 days"}, headers=ADMIN).status_code
        == 422
    )
