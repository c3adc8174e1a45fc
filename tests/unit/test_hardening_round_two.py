"""Issue 24's small findings, each with the test that failed before it was fixed."""

from __future__ import annotations

import logging
from ipaddress import ip_address

import pytest
from fastapi.testclient import TestClient

from core.logs import RedactTokens, redact
from core.netguard import address_allowed


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/credits/", "/jobs/job_0123456789abcdef01234567/"]
)
def test_no_redirect_is_built_from_the_host_header(app_client: TestClient, path: str) -> None:
    response = app_client.get(path, headers={"host": "evil.example"}, follow_redirects=False)
    location = response.headers.get("location", "")
    assert "evil.example" not in location
    if response.status_code in (301, 302, 307, 308):
        assert location.startswith("/")


def test_the_dashboard_with_a_slash_still_opens(app_client: TestClient) -> None:
    response = app_client.get("/admin/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "/admin")


def test_a_signed_links_sig_is_redacted_in_logs() -> None:
    line = '127.0.0.1 - "GET /jobs/job_x/content?index=0&exp=1796&sig=abcdef0123 HTTP/1.1" 200'
    assert "abcdef0123" not in redact(line)
    assert "sig=[redacted]" in redact(line)
    record = logging.LogRecord(
        "uvicorn.access", 20, "", 0, '%s - "%s"', ("1.2.3.4", "/p?sig=s3"), None
    )
    RedactTokens().filter(record)
    assert "s3" not in record.getMessage()


@pytest.mark.parametrize("address", ["::ffff:0:7f00:1", "::ffff:0:808:808", "fec0::1", "fed0::1"])
def test_siit_and_site_local_ipv6_are_refused(address: str) -> None:
    assert not address_allowed(ip_address(address), [])


@pytest.mark.parametrize("text", ["a\\u202eb", "a\\u2066b", "a\\u2028b", "a\\u2029b"])
def test_bidi_overrides_and_separators_are_refused_in_text(client: TestClient, text: str) -> None:
    prompt = text.encode().decode("unicode_escape")
    response = client.post("/jobs", json={"prompt": prompt})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "prompt"
