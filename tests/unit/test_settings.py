from __future__ import annotations

import pytest
from pydantic import ValidationError

from soraq.config import SANDBOX_KIE_KEY, Settings


def production(**values: object) -> Settings:
    base: dict[str, object] = {
        "environment": "production",
        "kie_api_key": "real-kie",
        "imgbb_api_key": "real-imgbb",
        "kie_base_url": "https://api.kie.ai",
        "imgbb_base_url": "https://api.imgbb.com",
    }
    return Settings(**{**base, **values})  # type: ignore[arg-type]


def test_production_accepts_real_keys_and_hosts() -> None:
    assert production().environment == "production"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"kie_api_key": None}, "KIE_API_KEY is not set"),
        ({"imgbb_api_key": ""}, "IMGBB_API_KEY is not set"),
        ({"kie_api_key": SANDBOX_KIE_KEY}, "KIE_API_KEY is the sandbox key"),
        ({"kie_base_url": "http://127.0.0.1:8765"}, "KIE_BASE_URL points at this machine"),
    ],
)
def test_production_refuses_the_sandbox_and_missing_keys(
    values: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        production(**values)


def test_secrets_do_not_show_in_repr() -> None:
    assert "real-kie" not in repr(production())
