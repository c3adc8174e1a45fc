from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.config import SANDBOX_KIE_KEY, Settings


def production(**values: object) -> Settings:
    base: dict[str, object] = {
        "environment": "production",
        "kie_api_key": "real-kie",
        "imgbb_api_key": "real-imgbb",
        "kie_base_url": "https://api.kie.ai",
        "imgbb_base_url": "https://api.imgbb.com",
        "admin_token": None,  # the suite's environment sets a short one
        "session_secret": "s" * 32,
    }
    return Settings(**{**base, **values})  # type: ignore[arg-type]


def test_production_accepts_real_keys_and_hosts() -> None:
    assert production().environment == "production"
    with_admin = production(admin_token="t" * 32, session_secret="s" * 32)
    assert with_admin.admin_token is not None


def test_production_without_an_admin_token_keeps_the_admin_side_closed() -> None:
    assert production().admin_token is None


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"kie_api_key": None}, "KIE_API_KEY is not set"),
        ({"imgbb_api_key": ""}, "IMGBB_API_KEY is not set"),
        ({"kie_api_key": SANDBOX_KIE_KEY}, "KIE_API_KEY is the sandbox key"),
        ({"kie_base_url": "https://127.0.0.1:8765"}, "KIE_BASE_URL points at a loopback"),
        ({"kie_base_url": "http://api.kie.ai"}, "KIE_BASE_URL must be an https"),
        ({"imgbb_base_url": "https://[::ffff:127.0.0.1]/"}, "IMGBB_BASE_URL points at a loopback"),
        ({"imgbb_base_url": "https://10.0.0.8/"}, "IMGBB_BASE_URL points at a loopback or private"),
        ({"kie_base_url": "https://localhost/"}, "KIE_BASE_URL points at a loopback"),
        ({"admin_token": ""}, "ADMIN_TOKEN is blank"),
        ({"admin_token": "short-token"}, "ADMIN_TOKEN is shorter than 32"),
        ({"admin_token": "x" * 40, "session_secret": None}, "SESSION_SECRET must be set"),
        ({"session_secret": None}, "SESSION_SECRET must be set"),
        ({"webhook_allow_http": True}, "WEBHOOK_ALLOW_HTTP must be false"),
        ({"webhook_allowed_networks": "10.0.0.0/8,0.0.0.0/0"}, "allows every address"),
        ({"webhook_allowed_networks": "::/0"}, "allows every address"),
        (
            {"database_url": "postgresql://soraq:change-me@postgres:5432/soraq"},
            "DATABASE_URL uses the example password",
        ),
        ({"postgres_password": "change-me"}, "POSTGRES_PASSWORD uses the example password"),
    ],
)
def test_production_refuses_the_sandbox_and_missing_keys(
    values: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        production(**values)


def test_secrets_do_not_show_in_repr() -> None:
    assert "real-kie" not in repr(production())
