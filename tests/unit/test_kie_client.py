"""The Kie client against Kie's documented answers and quirks (respx, no network)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from upstreams.errors import ExternalError
from upstreams.kie_http import KieHTTP
from upstreams.kie_jobs import KieJobs as KieClient

BASE = "https://kie.test"


@pytest.fixture
def kie() -> KieClient:
    return KieClient(KieHTTP(BASE, "secret-key", timeout=2))


def envelope(code: int, msg: str = "", data: object = None, key: str = "msg") -> dict[str, object]:
    return {"code": code, key: msg, "data": data}


@respx.mock
def test_create_task_sends_model_input_callback_and_headers(kie: KieClient) -> None:
    route = respx.post(f"{BASE}/api/v1/jobs/createTask").respond(
        json=envelope(200, "success", {"taskId": "task_1"})
    )
    assert kie.create("sora-2-text-to-video", {"prompt": "p"}, "https://cb/x") == "task_1"
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer secret-key"
    assert request.headers["user-agent"].startswith("soraq/")
    assert json.loads(request.content) == {
        "model": "sora-2-text-to-video",
        "input": {"prompt": "p"},
        "callBackUrl": "https://cb/x",
    }


@pytest.mark.parametrize(
    ("code", "expected", "retryable"),
    [
        (401, "kie_unauthorized", False),
        (402, "kie_insufficient_credits", False),
        (422, "kie_invalid_request", False),
        (433, "kie_key_limit", False),
        (505, "kie_feature_disabled", False),
        (429, "kie_rate_limited", True),
        (455, "kie_maintenance", True),
        (500, "kie_server_error", True),
    ],
)
@respx.mock
def test_errors_in_an_http_200_body_are_read_from_code(
    kie: KieClient, code: int, expected: str, retryable: bool
) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(200, json=envelope(code, "nope"))
    with pytest.raises(ExternalError) as raised:
        kie.create("m", {"prompt": "p"}, None)
    assert raised.value.code == expected
    assert raised.value.retryable is retryable
    assert raised.value.maybe_sent is False  # a definite answer: no task was created
    assert raised.value.message == "nope"


@respx.mock
def test_old_clients_message_field_is_read_too(kie: KieClient) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(
        json=envelope(402, "The current credits are insufficient.", key="message")
    )
    with pytest.raises(ExternalError, match="credits are insufficient"):
        kie.create("m", {"prompt": "p"}, None)


@respx.mock
def test_retry_after_is_kept(kie: KieClient) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(
        429, json=envelope(429, "slow down"), headers={"Retry-After": "7"}
    )
    with pytest.raises(ExternalError) as raised:
        kie.create("m", {"prompt": "p"}, None)
    assert raised.value.retry_after == 7


@respx.mock
def test_a_read_timeout_on_create_means_the_outcome_is_unknown(kie: KieClient) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ExternalError) as raised:
        kie.create("m", {"prompt": "p"}, None)
    assert raised.value.code == "kie_timeout"
    assert raised.value.maybe_sent is True


@respx.mock
def test_a_refused_connection_proves_nothing_was_sent(kie: KieClient) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ExternalError) as raised:
        kie.create("m", {"prompt": "p"}, None)
    assert raised.value.retryable
    assert not raised.value.maybe_sent


@respx.mock
def test_malformed_json_on_create_is_an_unknown_outcome(kie: KieClient) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(200, content=b'{"code": 200, "da')
    with pytest.raises(ExternalError) as raised:
        kie.create("m", {"prompt": "p"}, None)
    assert raised.value.code == "kie_bad_response"
    assert raised.value.maybe_sent


@respx.mock
def test_cdn_block_is_permanent(kie: KieClient) -> None:
    respx.post(f"{BASE}/api/v1/jobs/createTask").respond(403, text="error code: 1010")
    with pytest.raises(ExternalError) as raised:
        kie.create("m", {"prompt": "p"}, None)
    assert raised.value.code == "kie_forbidden"
    assert not raised.value.retryable


@respx.mock
def test_record_info_null_right_after_creation_is_pending(kie: KieClient) -> None:
    respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json=envelope(422, "recordInfo is null"))
    assert kie.read("task_1").state == "pending"


@respx.mock
def test_record_info_parses_result_json_string(kie: KieClient) -> None:
    result = {"resultUrls": ["https://v/1.mp4"], "resultWaterMarkUrls": ["https://v/1w.mp4"]}
    data = {
        "taskId": "task_1",
        "state": "success",
        "resultJson": json.dumps(result),
        "progress": 100,
    }
    route = respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json=envelope(200, "success", data))
    info = kie.read("task_1")
    assert route.calls.last.request.url.params["taskId"] == "task_1"
    assert info.state == "success"
    assert info.video_urls == ["https://v/1.mp4"]
    assert info.watermarked_video_urls == ["https://v/1w.mp4"]


@respx.mock
def test_record_info_generating_with_progress(kie: KieClient) -> None:
    data = {"taskId": "t", "state": "generating", "progress": 45, "resultJson": ""}
    respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json=envelope(200, "success", data))
    info = kie.read("t")
    assert (info.state, info.progress) == ("generating", 45)


@respx.mock
def test_record_info_fail_carries_fail_code_and_message(kie: KieClient) -> None:
    data = {"taskId": "t", "state": "fail", "failCode": "400", "failMsg": "bad image"}
    respx.get(f"{BASE}/api/v1/jobs/recordInfo").respond(json=envelope(200, "success", data))
    info = kie.read("t")
    assert (info.state, info.fail_code, info.fail_msg) == ("fail", "400", "bad image")
