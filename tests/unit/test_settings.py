from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.config import SANDBOX_KIE_KEY, Settings

SESSION_SECRET = "k3Jd9-QzXw7LmN2pR5tV8yB1cF4hG6jA"
METRICS_TOKEN = "m7Hq2Wz9Lx4Rv8Kc1Pt5Ny3Bf6Gj0Sd2"
ADMIN_TOKEN = "a9Zr4Xq7Lm2Wk8Vn3Pj6Ht1Gc5Fb0Ds4"


def production(**values: object) -> Settings:
    base: dict[str, object] = {
        "environment": "production",
        "kie_api_key": "real-kie",
        "imgbb_api_key": "real-imgbb",
        "kie_base_url": "https://api.kie.ai",
        "imgbb_base_url": "https://api.imgbb.com",
        "admin_token": None,  # the suite's environment sets a short one
        "session_secret": SESSION_SECRET,
        "metrics_token": METRICS_TOKEN,
    }
    return Settings(**{**base, **values})  # type: ignore[arg-type]


def test_production_accepts_real_keys_and_hosts() -> None:
    assert production().environment == "production"
    with_admin = production(admin_token=ADMIN_TOKEN)
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
        ({"admin_token": ADMIN_TOKEN, "session_secret": None}, "SESSION_SECRET must be set"),
        ({"session_secret": None}, "SESSION_SECRET must be set"),
        ({"webhook_allow_http": True}, "WEBHOOK_ALLOW_HTTP must be false"),
        ({"webhook_allowed_networks": "10.0.0.0/8,0.0.0.0/0"}, "allows every address"),
        ({"webhook_allowed_networks": "::/0"}, "allows every address"),
        (
            {"database_url": "postgresql://soraq:change-me@postgres:5432/soraq"},
            "DATABASE_URL uses the example password",
        ),
        ({"postgres_password": "change-me"}, "POSTGRES_PASSWORD uses the example password"),
        # Issue 24, item 11: what a second review got past the checks.
        (
            {"webhook_allowed_networks": "0.0.0.0/1,128.0.0.0/1"},
            "WEBHOOK_ALLOWED_NETWORKS allows every address",
        ),
        ({"webhook_allowed_networks": "::/1,8000::/1"}, "allows every address"),
        ({"webhook_allowed_networks": "::ffff:0:0/97,::ffff:128.0.0.0/97"}, "every address"),
        ({"webhook_allowed_networks": "169.254.0.0/16"}, "link-local or metadata"),
        ({"upstream_allowed_networks": "127.0.0.1/32"}, "UPSTREAM_ALLOWED_NETWORKS opens loopback"),
        ({"upstream_allowed_networks": "::ffff:169.254.169.254/128"}, "metadata"),
        ({"upstream_allowed_networks": "fe80::/64"}, "link-local"),
        ({"upstream_allowed_networks": "0.0.0.0/0"}, "UPSTREAM_ALLOWED_NETWORKS allows every"),
        (
            {"database_url": "postgresql://soraq:change%2Dme@postgres:5432/soraq"},
            "DATABASE_URL uses the example password",
        ),
        ({"session_secret": " " * 40}, "SESSION_SECRET must be set"),
        ({"session_secret": "ab1" * 14}, "SESSION_SECRET is trivially weak"),
        ({"admin_token": "x" * 40}, "ADMIN_TOKEN is trivially weak"),
        ({"admin_token": "ab" * 20}, "ADMIN_TOKEN is trivially weak"),
        ({"test_mode_kie_url": "http://127.0.0.1:8765"}, "TEST_MODE_KIE_URL points at this"),
        ({"test_mode_kie_url": "http://[::1]:8765"}, "TEST_MODE_KIE_URL points at this"),
        ({"test_mode_kie_url": "http://localhost:8765"}, "TEST_MODE_KIE_URL points at this"),
        # Issue 24, item 16: /metrics names every client and shows Kie's balance.
        ({"metrics_token": None}, "METRICS_TOKEN is not set"),
        ({"metrics_token": "1111111111111111111111111111111111"}, "METRICS_TOKEN is trivially"),
    ],
)
def test_production_refuses_the_sandbox_and_missing_keys(
    values: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        production(**values)


def test_secrets_do_not_show_in_repr() -> None:
    assert "real-kie" not in repr(production())


def test_production_takes_a_private_allowance_a_sandbox_and_an_open_metrics_said_so() -> None:
    settings = production(
        webhook_allowed_networks="10.20.0.0/16",
        upstream_allowed_networks="172.28.0.10/32",
        test_mode_kie_url="http://172.28.0.10:8765",
        metrics_token=None,
        metrics_public=True,
    )
    assert settings.upstream_networks[0].prefixlen == 32
    assert settings.metrics_public


def test_each_refusal_names_its_setting() -> None:
    with pytest.raises(ValidationError) as refused:
        production(session_secret="z" * 40, metrics_token=None)
    text = str(refused.value)
    assert "SESSION_SECRET" in text
    assert "METRICS_TOKEN" in text
