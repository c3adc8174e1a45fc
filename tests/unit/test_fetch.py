"""Downloading a result: a hostile upstream cannot redirect the worker inside our network,
to another scheme, or past the size cap."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from core.config import Settings
from worker.fetch import FetchError, fetch

PUBLIC = "https://93.184.216.34"  # an address literal: no DNS needed


@pytest.fixture
def settings() -> Settings:
    return Settings(upstream_allowed_networks="", archive_max_bytes=1000)


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("http://10.0.0.1/secret", "private"),
        ("http://169.254.169.254/latest/meta-data", "private"),
        ("http://[::ffff:127.0.0.1]/x", "private"),
        ("ftp://93.184.216.34/v.mp4", "http(s)"),
        ("file:///etc/passwd", "http(s)"),
    ],
)
@respx.mock
def test_a_redirect_out_of_bounds_is_refused(
    settings: Settings, tmp_path: Path, location: str, fragment: str
) -> None:
    respx.get(f"{PUBLIC}/v.mp4").respond(302, headers={"location": location})
    with pytest.raises(FetchError) as refused:
        fetch(f"{PUBLIC}/v.mp4", tmp_path / "v", settings)
    assert refused.value.code == "archive_refused"
    assert refused.value.refused
    assert not refused.value.retryable
    assert fragment in refused.value.message


def test_a_host_that_does_not_resolve_is_tried_again_not_refused(
    settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(FetchError) as unresolved:
        fetch("https://no-such-host.invalid/v.mp4", tmp_path / "v", settings)
    assert unresolved.value.retryable
    assert not unresolved.value.refused


def test_soraq_s_own_allowance_is_not_the_clients(tmp_path: Path) -> None:
    """Allowing a network for clients' webhooks does not let result downloads in, and the
    other way round (issue 24, item 2)."""
    from core.netguard import UnsafeURL, resolve

    clients_only = Settings(webhook_allowed_networks="10.0.0.0/8")
    with pytest.raises(FetchError) as refused:
        fetch("http://10.0.0.7/v.mp4", tmp_path / "v", clients_only)
    assert refused.value.refused
    upstream_only = Settings(upstream_allowed_networks="10.0.0.0/8")
    with pytest.raises(UnsafeURL):
        resolve("https://10.0.0.7/hook", allow_http=False, allowed=upstream_only.client_networks)
    assert resolve("http://10.0.0.7/v", allow_http=True, allowed=upstream_only.upstream_networks)


@respx.mock
def test_a_file_over_the_cap_is_refused_while_streaming(settings: Settings, tmp_path: Path) -> None:
    respx.get(f"{PUBLIC}/big.mp4").respond(content=b"x" * 5000)
    with pytest.raises(FetchError) as refused:
        fetch(f"{PUBLIC}/big.mp4", tmp_path / "v", settings)
    assert refused.value.code == "archive_too_large"


@respx.mock
def test_a_gone_source_is_told_apart_from_a_failing_one(settings: Settings, tmp_path: Path) -> None:
    respx.get(f"{PUBLIC}/gone.mp4").respond(404)
    respx.get(f"{PUBLIC}/busy.mp4").respond(503)
    with pytest.raises(FetchError) as gone:
        fetch(f"{PUBLIC}/gone.mp4", tmp_path / "v", settings)
    assert gone.value.gone
    with pytest.raises(FetchError) as busy:
        fetch(f"{PUBLIC}/busy.mp4", tmp_path / "v", settings)
    assert busy.value.retryable
    assert not busy.value.gone


def test_the_connection_goes_to_the_vetted_address_under_the_real_host_name() -> None:
    from core.netguard import CheckedURL

    v6 = CheckedURL("https://h.example:8443/a?b=1", "https", "h.example", 8443, "2606:4700::1")
    assert v6.pinned_url == "https://[2606:4700::1]:8443/a?b=1"
    assert v6.host_header == "h.example:8443"
    v4 = CheckedURL("https://h.example/a", "https", "h.example", 443, "93.184.216.34")
    assert v4.pinned_url == "https://93.184.216.34/a"
    assert v4.host_header == "h.example"
