"""Finding 1 of the hardening review: the dashboard's session key must never be public."""

from __future__ import annotations

import hashlib
import hmac
import json
from base64 import b64encode
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner

from api.app import create_app
from core.config import Settings, get_settings

CANCEL_URL = "/admin/view/job_0123456789abcdef01234567/cancel"


def forged_cookie(key: str) -> str:
    """A session cookie as Starlette's SessionMiddleware would sign it with `key`."""
    data = b64encode(json.dumps({"admin": True, "csrf": "x"}).encode())
    return TimestampSigner(key).sign(data).decode()


def key_from_token_alone(token: str) -> str:
    # How the key used to be derived: from the admin token only.
    return hmac.new(token.encode(), b"soraq dashboard sessions", hashlib.sha256).hexdigest()


@pytest.fixture
def app_with_token(
    migrated: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[TestClient]:
    monkeypatch.setenv("ADMIN_TOKEN", request.param)
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            yield client
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_a_blank_admin_token_is_no_token() -> None:
    for blank in ("", "   ", "\t"):
        settings = Settings(admin_token=blank)  # type: ignore[arg-type]
        assert settings.admin_token is None


@pytest.mark.parametrize("app_with_token", [""], indirect=True)
def test_blank_token_closes_every_admin_door(app_with_token: TestClient) -> None:
    client = app_with_token
    assert client.get("/admin/jobs", headers={"authorization": "Bearer "}).status_code == 401
    assert client.get("/admin/jobs", headers={"authorization": "Bearer"}).status_code == 401
    login = client.post("/admin/login", data={"token": ""}, follow_redirects=False)
    assert login.status_code == 401
    client.cookies.set("soraq_admin", forged_cookie(key_from_token_alone("")))
    page = client.get("/admin")
    assert "Log in" in page.text or "token" in page.text.lower()
    assert "<table" not in page.text  # never the job listing
    cancel = client.post(CANCEL_URL, data={"csrf": "x"}, follow_redirects=False)
    assert cancel.status_code == 401


@pytest.mark.parametrize("app_with_token", ["a-real-admin-token-of-enough-length!"], indirect=True)
def test_a_cookie_signed_without_the_server_secret_is_refused(app_with_token: TestClient) -> None:
    client = app_with_token
    for key in (key_from_token_alone(""), key_from_token_alone(get_admin_token())):
        client.cookies.set("soraq_admin", forged_cookie(key))
        assert "<table" not in client.get("/admin").text
        denied = client.post(CANCEL_URL, data={"csrf": "x"})
        assert denied.status_code == 401
    client.cookies.clear()
    # The real token still logs in, and that session works.
    login = client.post("/admin/login", data={"token": get_admin_token()}, follow_redirects=False)
    assert login.status_code == 303
    assert "<table" in client.get("/admin").text


def get_admin_token() -> str:
    token = get_settings().admin_token
    assert token is not None
    return token.get_secret_value()
