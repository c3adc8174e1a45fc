from __future__ import annotations

import httpx
import pytest
import respx

from tests.images import PNG
from upstreams.errors import ExternalError
from upstreams.imgbb import ImgbbClient

BASE = "https://imgbb.test"


@pytest.fixture
def imgbb() -> ImgbbClient:
    return ImgbbClient(BASE, "imgbb-secret", timeout=2, expiration=86400)


def imgbb_error(status: int, message: str, code: int | None = None) -> dict[str, object]:
    error: dict[str, object] = {"message": message}
    if code is not None:
        error["code"] = code
    return {"status_code": status, "error": error, "status_txt": "Bad Request"}


@respx.mock
def test_upload_returns_data_url_and_keeps_the_key_out_of_the_url(imgbb: ImgbbClient) -> None:
    route = respx.post(f"{BASE}/1/upload").respond(
        json={
            "data": {"id": "x", "url": "https://i.ibb.co/x/a.png", "size": "42"},
            "success": True,
            "status": 200,
        }
    )
    assert imgbb.upload(PNG, name="a.png", content_type="image/png") == "https://i.ibb.co/x/a.png"
    request = route.calls.last.request
    assert "imgbb-secret" not in str(request.url)
    assert b'name="expiration"\r\n\r\n86400' in request.content
    assert b'name="key"\r\n\r\nimgbb-secret' in request.content


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (400, imgbb_error(400, "Invalid API v1 key.", 100), "imgbb_unauthorized", False),
        (400, imgbb_error(400, "Invalid image source.", 310), "imgbb_invalid_image", False),
        (400, imgbb_error(400, "Empty upload source."), "imgbb_invalid_image", False),
        (429, imgbb_error(429, "Rate limit"), "imgbb_rate_limited", True),
        (503, None, "imgbb_server_error", True),
    ],
)
@respx.mock
def test_errors_map_from_imgbbs_own_envelope(
    imgbb: ImgbbClient, status: int, body: object, code: str, retryable: bool
) -> None:
    route = respx.post(f"{BASE}/1/upload")
    if body is None:
        route.respond(status, text="<html>")
    else:
        route.respond(status, json=body)
    with pytest.raises(ExternalError) as raised:
        imgbb.upload(PNG, name="a.png", content_type="image/png")
    assert (raised.value.code, raised.value.retryable) == (code, retryable)


@respx.mock
def test_timeouts_are_retryable(imgbb: ImgbbClient) -> None:
    respx.post(f"{BASE}/1/upload").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ExternalError) as raised:
        imgbb.upload(PNG, name="a.png", content_type="image/png")
    assert raised.value.code == "imgbb_timeout"
    assert raised.value.retryable
