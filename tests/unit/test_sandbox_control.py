"""The sandbox's control routes (call log with prompts and callback tokens, config, reset,
top-up, the live catalogue's changes) answer only the holder of SANDBOX_CONTROL_TOKEN, and
`soraq sandbox` does not run under ENVIRONMENT=production unless asked for test mode (issue
24, item 17)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.config import Settings
from sandbox.app import create_app
from soraq.cli import run_sandbox

CONTROL = [
    ("GET", "/_sandbox/calls", None),
    ("GET", "/_sandbox/config", None),
    ("POST", "/_sandbox/config", {"duration": 1}),
    ("POST", "/_sandbox/topup", {"credits": 5}),
    ("POST", "/_sandbox/reset", {}),
    ("POST", "/_sandbox/tasks", {"ids": []}),
    ("POST", "/_sandbox/catalogue", {"reset": True}),
]


def client(monkeypatch: pytest.MonkeyPatch, token: str | None) -> TestClient:
    if token is None:
        monkeypatch.delenv("SANDBOX_CONTROL_TOKEN", raising=False)
    else:
        monkeypatch.setenv("SANDBOX_CONTROL_TOKEN", token)
    return TestClient(create_app())


@pytest.mark.parametrize(("method", "path", "body"), CONTROL)
def test_control_routes_need_the_token(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: object
) -> None:
    with client(monkeypatch, "ctl-3f9a7c1e") as sandbox:
        assert sandbox.request(method, path, json=body).status_code == 401
        wrong = {"authorization": "Bearer ctl-3f9a7c1f"}
        assert sandbox.request(method, path, json=body, headers=wrong).status_code == 401
        right = {"authorization": "Bearer ctl-3f9a7c1e"}
        assert sandbox.request(method, path, json=body, headers=right).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), CONTROL)
def test_without_a_token_the_control_routes_are_closed(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: object
) -> None:
    with client(monkeypatch, None) as sandbox:
        answer = sandbox.request(method, path, json=body, headers={"authorization": "Bearer "})
        assert answer.status_code == 403
        assert "SANDBOX_CONTROL_TOKEN" in answer.text


def test_kie_s_own_routes_and_health_stay_as_kie_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with client(monkeypatch, None) as sandbox:
        assert sandbox.get("/healthz").status_code == 200
        balance = sandbox.get(
            "/api/v1/chat/credit", headers={"authorization": "Bearer sandbox-kie-key"}
        )
        assert balance.status_code == 200
        assert balance.json()["code"] == 200


def test_the_token_is_not_in_the_config_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    with client(monkeypatch, "ctl-3f9a7c1e") as sandbox:
        shown = sandbox.get("/_sandbox/config", headers={"authorization": "Bearer ctl-3f9a7c1e"})
        assert "ctl-3f9a7c1e" not in shown.text


def test_soraq_sandbox_refuses_production_unless_test_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    production = Settings.model_construct(environment="production")
    assert run_sandbox("127.0.0.1", 0, test_mode=False, settings=production) == 2
    assert "--test-mode" in capsys.readouterr().err
