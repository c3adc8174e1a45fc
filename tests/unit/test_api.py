"""The API in process: what a client sees for good and bad input (no worker needed)."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from tests.images import JPEG_HEADER, PNG, WEBP
from tests.unit.conftest import count_jobs, new_client_key


def test_create_answers_202_with_location_and_the_job(client: TestClient) -> None:
    response = client.post("/jobs", json={"prompt": "A cat", "metadata": {"order": 12}})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["model"] == "veo3.1-fast/text-to-video"
    assert job["input"] == {
        "prompt": "A cat",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": 8,
    }
    assert job["metadata"] == {"order": 12}
    assert client.get(f"/jobs/{job['id']}").json() == {**job, "queue_position": 1}


def test_an_image_picks_the_image_to_video_model(client: TestClient) -> None:
    response = client.post(
        "/jobs", json={"prompt": "Move", "image_base64": base64.b64encode(PNG).decode()}
    )
    assert response.status_code == 202
    job = response.json()
    assert job["model"] == "kling-2.6/image-to-video"
    assert job["input"]["images"] == [
        {"role": "first_frame", "content_type": "image/png", "bytes": len(PNG)}
    ]
    assert "image_base64" not in job["input"]


def test_a_retired_model_is_refused_naming_its_replacement(client: TestClient) -> None:
    before = count_jobs()
    response = client.post("/jobs", json={"prompt": "x", "model": "sora-2-pro-text-to-video"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "model_retired"
    assert error["replaced_by"] == "veo3.1/text-to-video"
    assert error["fields"][0]["field"] == "model"
    assert count_jobs() == before


def test_a_non_sora_model_takes_its_own_params(client: TestClient) -> None:
    body = {"prompt": "x", "model": "kling-2.6/text-to-video", "duration": 5, "sound": True}
    response = client.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["input"] == {
        "prompt": "x",
        "aspect_ratio": "1:1",
        "duration": 5,
        "sound": True,
    }


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({}, "prompt", "is required by model"),
        ({"prompt": ""}, "prompt", "at least 1 character"),
        ({"prompt": "   "}, "prompt", "blank"),
        ({"prompt": "x" * 5001}, "prompt", "limit is 5000"),
        (
            {"prompt": "x" * 1001, "model": "kling-2.6/text-to-video"},
            "prompt",
            "limit is 1000 for model kling-2.6/text-to-video",
        ),
        ({"prompt": 42}, "prompt", "valid string"),
        ({"prompt": "x", "model": "sora-9"}, "model", "unknown model"),
        ({"prompt": "x", "duration": 11}, "duration", "one of 4, 6, 8"),
        ({"prompt": "x", "duration": "ten"}, "duration", "must be an integer"),
        ({"prompt": "x", "duration": True}, "duration", "must be an integer"),
        ({"prompt": "x", "aspect_ratio": "square"}, "aspect_ratio", "16:9, 9:16, Auto"),
        ({"prompt": "x", "size": "high"}, "size", "does not take 'size'"),
        ({"prompt": "x", "sound": True}, "sound", "does not take 'sound'"),
        ({"prompt": "x", "model": "kling-2.6/image-to-video"}, "images", "needs 1 first_frame"),
        (
            {
                "prompt": "x",
                "model": "runway/video",
                "duration": 10,
                "quality": "1080p",
            },
            "quality",
            "one of 720p",
        ),
        (
            {
                "prompt": "x",
                "model": "veo3.1-fast/image-to-video",
                "images": [{"role": "reference", "url": "https://a.test/a.png"}],
            },
            "images",
            "takes no reference image",
        ),
        (
            {
                "prompt": "x",
                "model": "veo3.1-fast/image-to-video",
                "image_url": "https://a.test/a.png",
                "images": [
                    {"role": "last_frame", "url": "https://a.test/b.png"},
                    {"role": "last_frame", "url": "https://a.test/c.png"},
                ],
            },
            "images",
            "at most 1 last_frame",
        ),
        (
            {"prompt": "x", "images": [{"role": "first_frame"}]},
            "images.0",
            "exactly one of url or base64",
        ),
        (
            {
                "prompt": "x",
                "model": "kling-2.6/image-to-video",
                "image_base64": base64.b64encode(WEBP).decode(),
            },
            "image_base64",
            "takes jpeg, png images",
        ),
        ({"prompt": "x", "image_url": "http://example.com/a.png"}, "image_url", "https"),
        ({"prompt": "x", "image_url": "https://10.0.0.1/a.png"}, "image_url", "public host"),
        ({"prompt": "x", "image_url": "https://localhost/a.png"}, "image_url", "public host"),
        # Hosts that look public as text but resolve to this machine.
        ({"prompt": "x", "image_url": "https://2130706433/a.png"}, "image_url", "private"),
        ({"prompt": "x", "image_url": "https://0x7f.1/a.png"}, "image_url", "private"),
        ({"prompt": "x", "image_url": "https://localhost./a.png"}, "image_url", "public host"),
        ({"prompt": "x", "image_url": "https://169.254.169.254.nip.io/a"}, "image_url", "resolve"),
        ({"prompt": "x\u0000y"}, "prompt", "control characters"),
        ({"prompt": "x", "aspect_ratio": "16:9\u001b[2J"}, "aspect_ratio", "control characters"),
        ({"prompt": "x", "metadata": {"k": "a\u0007"}}, "metadata", "control characters"),
        (
            {"prompt": "x", "metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}},
            "metadata",
            "nest at most",
        ),
        ({"prompt": "x", "image_base64": "!!!notbase64"}, "image_base64", "base64"),
        (
            {"prompt": "x", "image_base64": base64.b64encode(b"GIF89a....").decode()},
            "image_base64",
            "not a JPEG, PNG or WebP",
        ),
        (
            {
                "prompt": "x",
                "image_base64": "data:image/jpeg;base64," + base64.b64encode(PNG).decode(),
            },
            "image_base64",
            "declared as image/jpeg",
        ),
        (
            {"prompt": "x", "image_url": "https://a.test/a.png", "image_base64": "AAAA"},
            "image",
            "give one first image",
        ),
        ({"prompt": "x", "metadata": {"k": "v" * 9000}}, "metadata", "at most"),
        ({"prompt": "x", "metadata": [1, 2]}, "metadata", "an object"),
        (
            {
                "prompt": "x",
                "model": "bytedance/v1-pro-text-to-video",
                "image_url": "https://a.test/a.png",
            },
            "images",
            "does not take images",
        ),
    ],
)
def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(
    client: TestClient, body: dict[str, object], field: str, fragment: str
) -> None:
    before = count_jobs()
    response = client.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][0]["field"] == field, error
    assert fragment in error["message"]
    assert count_jobs() == before


def test_tabs_and_newlines_are_fine_in_a_prompt(client: TestClient) -> None:
    response = client.post("/jobs", json={"prompt": "line one\n\tline two"})
    assert response.status_code == 202, response.text


def test_deep_multipart_metadata_is_a_422_not_a_500(client: TestClient) -> None:
    deep = "[" * 3000 + "]" * 3000  # within 8 kB, but deeper than Python's parser goes
    image = {"image": ("a.png", PNG, "image/png")}
    response = client.post("/jobs", data={"prompt": "x", "metadata": deep}, files=image)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "metadata"
    # A JSON body nested past the parser's limit is a 422 too, not a 500.
    body = '{"prompt": "x", "metadata": ' + '{"a":' * 3000 + "1" + "}" * 3001
    response = client.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    nested = '{"a":' * 20 + "1" + "}" * 20
    response = client.post(
        "/jobs",
        data={"prompt": "x", "metadata": nested},
        files=image,
    )
    assert response.status_code == 422
    assert "nest at most" in response.json()["error"]["message"]


def test_an_image_over_10_mb_is_refused(client: TestClient) -> None:
    big = JPEG_HEADER + b"\x00" * (10 * 1024 * 1024)
    response = client.post(
        "/jobs", files={"image": ("big.jpg", big, "image/jpeg")}, data={"prompt": "x"}
    )
    assert response.status_code == 422
    assert "10 MB" in response.json()["error"]["message"]


def test_multipart_checks_the_bytes_not_the_file_name(client: TestClient) -> None:
    response = client.post(
        "/jobs",
        files={"image": ("cat.png", b"not an image at all", "image/png")},
        data={"prompt": "x"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "image"


def test_multipart_types_form_fields_by_the_catalogue(client: TestClient) -> None:
    response = client.post(
        "/jobs",
        files={"image": ("cat.png", PNG, "image/png")},
        data={"prompt": "x", "duration": "10", "sound": "true"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["model"] == "kling-2.6/image-to-video"
    assert response.json()["input"]["duration"] == 10
    assert response.json()["input"]["sound"] is True


def test_multipart_takes_images_by_role(client: TestClient) -> None:
    response = client.post(
        "/jobs",
        files=[
            ("image", ("first.png", PNG, "image/png")),
            ("image_last_frame", ("last.png", PNG, "image/png")),
        ],
        data={"prompt": "x", "model": "veo3.1-fast/image-to-video", "duration": "6"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert [i["role"] for i in job["input"]["images"]] == ["first_frame", "last_frame"]
    assert job["input"]["duration"] == 6


def test_a_body_declared_too_large_is_refused_before_reading(client: TestClient) -> None:
    response = client.post(
        "/jobs",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(50 << 20)},
    )
    assert response.status_code == 413


def test_other_content_types_are_refused(client: TestClient) -> None:
    response = client.post("/jobs", content=b"prompt=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def test_malformed_json_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/jobs", content=b'{"prompt": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_unknown_job_is_a_404(client: TestClient) -> None:
    response = client.get("/jobs/job_" + "0" * 24)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("bad_id", ["job_doesnotexist", "1 OR 1=1", "job_" + "0" * 300])
def test_a_path_id_that_is_no_job_id_is_a_422(client: TestClient, bad_id: str) -> None:
    response = client.get(f"/jobs/{bad_id}")
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "job_id"


def test_listing_is_newest_first_with_a_cursor(client: TestClient) -> None:
    ids = [client.post("/jobs", json={"prompt": f"list {i}"}).json()["id"] for i in range(5)]
    page1 = client.get("/jobs", params={"limit": 3}).json()
    page2 = client.get("/jobs", params={"limit": 3, "cursor": page1["next_cursor"]}).json()
    seen = [job["id"] for job in page1["data"] + page2["data"]]
    assert seen[:5] == ids[::-1]
    assert len(set(seen)) == len(seen)


def test_listing_filters_by_status(client: TestClient) -> None:
    client.post("/jobs", json={"prompt": "filter me"})
    jobs = client.get("/jobs", params={"status": "queued", "limit": 100}).json()["data"]
    assert jobs
    assert all(job["status"] == "queued" for job in jobs)
    assert client.get("/jobs", params={"status": "succeeded"}).json()["data"] == []
    assert client.get("/jobs", params={"status": "bogus"}).status_code == 422
    assert client.get("/jobs", params={"cursor": "garbage"}).status_code == 422


def test_models_lists_the_catalogue(client: TestClient) -> None:
    body = client.get("/models").json()
    ids = {model["id"] for model in body["data"]}
    assert {"sora-2-text-to-video", "veo3.1-fast/image-to-video", "kling-2.6/text-to-video"} <= ids
    by_id = {model["id"]: model for model in body["data"]}
    live = [m for m in body["data"] if m["status"] == "live"]
    assert len(live) >= 15
    assert len({m["id"].split("/")[0].split("-")[0] for m in live}) >= 6  # model families
    for default in (body["default_text_model"], body["default_image_model"]):
        assert by_id[default]["status"] == "live"
    sora = by_id["sora-2-text-to-video"]
    assert sora["status"] == "retired"
    assert by_id[sora["replaced_by"]]["status"] == "live"
    veo = by_id["veo3.1-fast/image-to-video"]
    assert veo["upstream"] == "kie-veo"
    assert veo["image_roles"] == {
        "first_frame": {"min": 1, "max": 1},
        "last_frame": {"min": 0, "max": 1},
    }
    assert veo["progress"] == "estimated"
    schema = by_id["kling-2.6/text-to-video"]["input_schema"]
    assert schema["properties"]["prompt"]["maxLength"] == 1000
    assert schema["properties"]["duration"] == {"type": "integer", "enum": [5, 10], "default": 5}
    assert schema["additionalProperties"] is False


def test_a_callback_for_an_unknown_token_is_a_404(client: TestClient) -> None:
    response = client.post("/kie/callback/not-a-token", json={"code": 200, "data": {"taskId": "t"}})
    assert response.status_code == 404


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://10.0.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://127.0.0.1/hook", "private"),
        ("https://[::1]/hook", "private"),
        ("https://localhost/hook", "private"),
        # IPv6 forms that carry a private IPv4 address inside them.
        ("https://[2002:7f00:1::1]/hook", "private"),  # 6to4 of 127.0.0.1
        ("https://[64:ff9b::7f00:1]/hook", "private"),  # NAT64 of 127.0.0.1
        ("https://[64:ff9b::a9fe:a9fe]/hook", "private"),  # NAT64 of 169.254.169.254
        ("https://[::127.0.0.1]/hook", "private"),  # IPv4-compatible
        ("https://[::ffff:127.0.0.1]/hook", "private"),  # IPv4-mapped
        ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", "private"),  # Teredo → 127.0.0.1
        ("http://example.com/hook", "https"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_unsafe_webhook_urls_are_refused(client: TestClient, url: str, fragment: str) -> None:
    before = count_jobs()
    response = client.post("/jobs", json={"prompt": "x", "webhook_url": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["fields"][0]["field"] == "webhook_url"
    assert fragment in error["message"]
    assert count_jobs() == before


def test_a_client_over_its_active_job_limit_gets_429(app_client: TestClient) -> None:
    app_client.headers["authorization"] = f"Bearer {new_client_key(max_active_jobs=2)}"
    for _ in range(2):
        assert app_client.post("/jobs", json={"prompt": "x"}).status_code == 202
    refused = app_client.post("/jobs", json={"prompt": "x"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert refused.json()["error"]["code"] == "too_many_active_jobs"
    assert "2" in refused.json()["error"]["message"]


def test_no_key_is_a_401_with_a_json_error(app_client: TestClient) -> None:
    response = app_client.get("/jobs")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_streamed_50_mb_body_is_refused(client: TestClient) -> None:
    # No Content-Length: the body is counted as it arrives (tests/integration checks that a
    # real server stops reading it early).
    chunks = (b"x" * (1 << 20) for _ in range(50))
    response = client.post("/jobs", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_json_nested_1000_deep_is_a_422(client: TestClient) -> None:
    nested = '{"a":' * 1000 + "1" + "}" * 1000
    response = client.post(
        "/jobs",
        content=f'{{"prompt": "x", "metadata": {nested}}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422


@pytest.mark.parametrize("status", ["' OR 1=1 --", "queued; DROP TABLE jobs", "%27"])
def test_sql_ish_filters_are_refused(client: TestClient, status: str) -> None:
    response = client.get("/jobs", params={"status": status})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "status"


def test_queue_position_while_queued_follows_priority_then_age(client: TestClient) -> None:
    ids = [client.post("/jobs", json={"prompt": f"q{i}"}).json()["id"] for i in range(3)]
    urgent = client.post("/jobs", json={"prompt": "urgent", "priority": "high"}).json()
    assert urgent["priority"] == "high"
    positions = [client.get(f"/jobs/{job_id}").json()["queue_position"] for job_id in ids]
    assert positions == [2, 3, 4]
    assert client.get(f"/jobs/{urgent['id']}").json()["queue_position"] == 1
    refused = client.post("/jobs", json={"prompt": "x", "priority": "asap"})
    assert refused.status_code == 422


def test_a_broken_multipart_body_is_a_422(client: TestClient) -> None:
    # Found by Schemathesis: this body once surfaced as an undocumented 400.
    boundary = "eec4e43470ac20d99409a00a60988cff"
    response = client.post(
        "/jobs",
        content=f"--{boundary}\r\n[[]]--{boundary}--\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "body"
