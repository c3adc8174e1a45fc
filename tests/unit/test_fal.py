"""fal.ai: its webhook signatures (Ed25519 over request, user, time and the body's hash), its
errors as soraq's codes, its task ids, and soraq's mapping of a job to fal's request body."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from api.fal_webhooks import MAX_JWKS_BYTES, REFRESH_AT_MOST, FalKeys, KeysUnavailable
from catalogue.fal import fal_routes
from tests.fal_jobs import FAL_JOBS
from upstreams.errors import ExternalError
from upstreams.fal_queue import error_of, split_task_id, task_id_of, video_urls

BODY = b'{"request_id": "r-1", "status": "OK"}'


def _signed(key: Ed25519PrivateKey, body: bytes = BODY, **changes: str) -> dict[str, str]:
    headers = {
        "x-fal-webhook-request-id": "r-1",
        "x-fal-webhook-user-id": "u-1",
        "x-fal-webhook-timestamp": str(int(time.time())),
    }
    parts = [*headers.values(), hashlib.sha256(body).hexdigest()]
    headers["x-fal-webhook-signature"] = key.sign("\n".join(parts).encode()).hex()
    return {**headers, **changes}


def _keys(*private: Ed25519PrivateKey) -> FalKeys:
    keys = FalKeys("https://jwks.invalid/")
    keys.keys, keys.read_at = [k.public_key() for k in private], time.monotonic()
    return keys


def test_a_webhook_fal_signed_is_believed_and_nothing_else_is() -> None:
    fal, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = _keys(fal)
    assert keys.verify(_signed(fal), BODY)
    assert not keys.verify(_signed(other), BODY)  # another key
    assert not keys.verify(_signed(fal), BODY + b" ")  # another body
    assert not keys.verify(_signed(fal, **{"x-fal-webhook-request-id": "r-2"}), BODY)
    old = str(int(time.time()) - 600)
    assert not keys.verify(_signed(fal, **{"x-fal-webhook-timestamp": old}), BODY)  # a replay
    assert not keys.verify(_signed(fal, **{"x-fal-webhook-signature": "zz"}), BODY)
    assert not keys.verify({}, BODY)
    assert _keys(other, fal).verify(_signed(fal), BODY)  # any of the published keys


class _JWKS(BaseHTTPRequestHandler):
    """fal's JWKS stand-in: serves `body`, counts the reads."""

    body = b""
    status = 200
    reads = 0

    def do_GET(self) -> None:  # noqa: N802
        type(self).reads += 1
        self.send_response(self.status)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks() -> Iterator[type[_JWKS]]:
    handler = type("Handler", (_JWKS,), {"reads": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_port}/jwks.json"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()


def test_the_keys_are_read_from_fals_jwks_once(jwks: type[_JWKS]) -> None:
    fal = Ed25519PrivateKey.generate()
    raw = fal.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    jwks.body = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}).encode()
    keys = FalKeys(jwks.url)  # type: ignore[attr-defined]
    assert all(keys.verify(_signed(fal), BODY) for _ in range(5))
    assert jwks.reads == 1


def test_a_jwks_that_fails_or_is_huge_is_not_believed_nor_read_on_every_webhook(
    jwks: type[_JWKS],
) -> None:
    fal = Ed25519PrivateKey.generate()
    jwks.body = b'{"keys": [' + b" " * (2 * MAX_JWKS_BYTES) + b"]}"
    keys = FalKeys(jwks.url)  # type: ignore[attr-defined]
    for _ in range(5):  # a burst of webhooks while fal's keys cannot be had
        with pytest.raises(KeysUnavailable):
            keys.verify(_signed(fal), BODY)
    assert jwks.reads == 1  # one read, then a pause: not one fetch per webhook
    jwks.status, jwks.body = 500, b"{}"
    keys.failed_at -= REFRESH_AT_MOST  # a minute later
    with pytest.raises(KeysUnavailable):
        keys.verify(_signed(fal), BODY)
    assert jwks.reads == 2


def _response(status: int, detail: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail}, headers=headers)


@pytest.mark.parametrize(
    ("status", "detail", "code", "retryable", "maybe_sent"),
    [
        (401, "Invalid Key", "fal_unauthorized", False, False),
        (
            403,
            "User is locked. Reason: Exhausted balance.",
            "fal_insufficient_credits",
            False,
            False,
        ),
        (403, "User is locked.", "fal_forbidden", False, False),
        (422, [{"loc": ["body", "duration"], "msg": "bad"}], "fal_invalid_request", False, False),
        (429, "Too many requests", "fal_rate_limited", True, False),
        (500, "boom", "fal_server_error", True, True),  # it may have been queued
        (503, "unavailable", "fal_server_error", True, False),
    ],
)
def test_fal_errors_map_to_soraq_codes(
    status: int, detail: object, code: str, retryable: bool, maybe_sent: bool
) -> None:
    error = error_of(_response(status, detail, **{"Retry-After": "3"}))
    assert (error.code, error.retryable, error.maybe_sent) == (code, retryable, maybe_sent)
    if status == 422:
        assert error.message == "duration: bad"
    if status == 429:
        assert error.retry_after == 3


def test_a_task_id_names_fals_app_and_request() -> None:
    task_id = task_id_of("fal-ai/veo3.1/fast", "abc-123")
    assert task_id == "fal:fal-ai/veo3.1:abc-123"
    assert split_task_id(task_id) == ("fal-ai/veo3.1", "abc-123")
    with pytest.raises(ExternalError):
        split_task_id("task_kie_123")


def test_only_http_video_urls_of_a_result_are_kept() -> None:
    assert video_urls({"video": {"url": "https://v.fal.media/a.mp4"}}) == [
        "https://v.fal.media/a.mp4"
    ]
    assert video_urls({"video": {"url": "file:///etc/passwd"}}) == []
    assert video_urls({"videos": [{"url": "https://x/1.mp4"}, "junk"]}) == ["https://x/1.mp4"]
    assert video_urls("nonsense") == []


def test_a_veo_job_becomes_fals_body() -> None:
    route = fal_routes()["veo3.1-fast/text-to-video"]
    params = {"aspect_ratio": "Auto", "resolution": "4k", "duration": 4, "watermark": "mine"}
    assert route.body("a cat", params) == {
        "prompt": "a cat",
        "generate_audio": True,
        "resolution": "4k",  # "Auto" has no fal word: fal's default ratio applies
        "duration": "4s",
    }
    assert set(route.ignored) == {"enable_translation", "watermark"}
    assert route.usd({"duration": 8, "resolution": "720p"}) == 1.2


def test_a_kling_job_becomes_fals_body() -> None:
    route = fal_routes()["kling-2.6/text-to-video"]
    params = {"aspect_ratio": "9:16", "duration": 10, "sound": False}
    assert route.body("a fox", params) == {
        "prompt": "a fox",
        "aspect_ratio": "9:16",
        "duration": "10",
        "generate_audio": False,  # fal's default is true: soraq's false is sent
    }
    assert route.usd({"duration": 10, "sound": True}) == 1.4


@pytest.mark.parametrize(("model", "given", "roles", "endpoint"), FAL_JOBS)
def test_each_kind_of_job_fal_makes_goes_to_its_endpoint_with_a_body_its_schema_takes(
    model: str, given: dict[str, object], roles: list[str], endpoint: str
) -> None:
    """The bodies soraq builds, checked against fal's schemas as transcribed for the sandbox
    (sandbox/fal_schemas.toml): the same check the fal sandbox makes on every submit."""
    from jsonschema import Draft202012Validator

    from catalogue import get_catalogue
    from sandbox.fal_queue import endpoints

    route = fal_routes()[model]
    params = get_catalogue().spec(model).validate({"prompt": "a lighthouse", **given})
    params.pop("prompt", None)
    assert route.refusal("a lighthouse", params, roles) is None
    assert route.endpoint_for(params, roles) == endpoint
    images = [(role, f"https://files.example/{role}.png") for role in roles]
    body = route.body("a lighthouse", params, images)
    errors = [e.message for e in Draft202012Validator(endpoints()[endpoint]).iter_errors(body)]
    assert errors == [], body
    for role, url in images:
        assert body[route.inputs[role]] == url
    assert (route.usd(params) or 0) > 0
    # A prompt soraq accepts never meets fal's 422 (a failed job): the longest Kie takes fits
    # fal's schema, or the route's `prompt_max` keeps it with Kie.
    validator = Draft202012Validator(endpoints()[endpoint])
    longest = "p" * get_catalogue().spec(model).prompt_max_length
    if route.refusal(longest, params, roles) is None:
        assert validator.is_valid(route.body(longest, params, images)), len(longest)
    else:
        assert route.prompt_max is not None
        assert validator.is_valid(route.body("p" * route.prompt_max, params, images))
        assert route.refusal(longest, params, roles) == (
            f"fal's {model} takes prompts of up to {route.prompt_max} characters"
        )


def test_every_fal_endpoint_soraq_sends_to_has_a_schema_in_the_sandbox() -> None:
    from sandbox.fal_queue import endpoints

    sent_to = {e for route in fal_routes().values() for e in route.endpoints()}
    assert sent_to <= set(endpoints())
    assert sent_to == {endpoint for *_, endpoint in FAL_JOBS}  # each one tested above


def test_a_job_beyond_what_fal_can_make_is_refused_by_its_route() -> None:
    seedance, kling, wan = (
        fal_routes()[m]
        for m in ("bytedance/seedance-2", "kling-3.0/video", "wan/2-7-text-to-video")
    )
    assert seedance.refusal("x", {"resolution": "1080p"}, []) == (
        "fal serves bytedance/seedance-2 with resolution 480p, 720p only"
    )
    assert seedance.refusal("x", {"resolution": "720p"}, ["reference"]) == (
        "fal's bytedance/seedance-2 takes no reference input"
    )
    assert seedance.refusal("x", {"resolution": "720p"}, ["first_frame", "last_frame"]) is None
    assert seedance.refusal("", {"resolution": "720p"}, []) == (
        "fal's bytedance/seedance-2 needs a prompt"
    )
    assert kling.refusal("x", {"mode": "4K"}, []) is not None
    assert kling.refusal("x", {"mode": "pro", "multi_shots": True}, []) is not None
    assert wan.refusal("x", {"watermark": True}, []) is not None
    assert wan.refusal("x", {"watermark": False}, ["audio"]) is None
    veo = fal_routes()["veo3.1/image-to-video"]
    assert veo.refusal("x", {}, ["first_frame", "last_frame"]) == (
        "fal's veo3.1/image-to-video takes no last_frame input"
    )
    kling_pro = fal_routes()["kling/v2-1-pro"]  # fal's page lists no tail frame
    assert kling_pro.refusal("x", {}, ["first_frame", "last_frame"]) == (
        "fal's kling/v2-1-pro takes no last_frame input"
    )
    assert kling_pro.refusal("x" * 2500, {}, ["first_frame"]) is None
    assert kling_pro.refusal("x" * 2501, {}, ["first_frame"]) == (  # Kie takes 5000
        "fal's kling/v2-1-pro takes prompts of up to 2500 characters"
    )


def test_fal_prices_follow_the_jobs_values() -> None:
    routes = fal_routes()
    assert routes["bytedance/seedance-2"].usd({"resolution": "480p", "duration": 5}) == 0.67
    assert routes["bytedance/seedance-2"].usd({"resolution": "720p", "duration": -1}) == 4.54
    assert routes["kling-3.0/video"].usd({"mode": "std", "sound": True, "duration": 5}) == 0.63
    assert routes["kling-3.0/video"].usd({"mode": "pro", "sound": False, "duration": 10}) == 1.12
    assert routes["hailuo/2-3-image-to-video-pro"].usd({"resolution": "768P", "duration": 10}) == (
        0.56
    )
    assert routes["hailuo/2-3-image-to-video-pro"].usd({"resolution": "1080P", "duration": 6}) == (
        0.49
    )
    assert routes["wan/2-7-text-to-video"].usd({"resolution": "1080p", "duration": 4}) == 0.6


def test_a_route_whose_endpoints_span_fal_apps_is_refused() -> None:
    from catalogue.fal import parse

    with pytest.raises(ValueError, match="span apps"):
        parse(
            """
[[routes]]
model = "m"
endpoint = "fal-ai/one/x"
variants = [{ when = { mode = "b" }, endpoint = "fal-ai/two/x" }]
"""
        )


LIKE = """
[[routes]]
model = "text"
endpoint = "fal-ai/m/text"
fields.aspect_ratio = "aspect_ratio"
fields.duration = { field = "duration", text = true }
fixed = { generate_audio = true }
price = { per_second = 0.1 }

[[routes]]
model = "image"
like = "text"
endpoint = "fal-ai/m/image"
drop_fields = ["aspect_ratio"]
fields.seed = "seed"
inputs = { first_frame = "image_url" }
"""


def test_a_route_like_another_takes_its_keys_under_its_own() -> None:
    from catalogue.fal import parse

    routes = parse(LIKE)
    image = routes["image"]
    assert (image.endpoint, sorted(image.fields)) == ("fal-ai/m/image", ["duration", "seed"])
    assert (image.fixed, image.inputs) == ({"generate_audio": True}, {"first_frame": "image_url"})
    assert image.usd({"duration": 5}) == routes["text"].usd({"duration": 5}) == 0.5
    assert image.body("p", {"duration": 5, "seed": 7, "aspect_ratio": "16:9"}) == {
        "prompt": "p",
        "duration": "5",
        "seed": 7,
        "generate_audio": True,
    }


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (('like = "text"', 'like = "sound"'), "like 'sound', which has no route"),
        (('model = "text"', 'model = "text"\nlike = "image"'), "goes round: text → image → text"),
        (('endpoint = "fal-ai/m/image"\n', ""), "image: no endpoint of its own"),
        (('model = "image"', 'model = "text"'), "a second route of the model"),
        (("drop_fields", "drop_field"), "unknown keys ['drop_field']"),
        (('like = "text"\n', ""), "drop_fields without like"),
    ],
)
def test_a_wrong_route_table_is_refused_naming_the_route(
    change: tuple[str, str], said: str
) -> None:
    from catalogue.fal import parse

    with pytest.raises(ValueError, match=re.escape(said)):
        parse(LIKE.replace(*change, 1))


def test_a_cancel_asks_fal_to_drop_the_request_and_reads_its_answer() -> None:
    from upstreams.fal_queue import FalQueue

    seen: list[tuple[str, str]] = []
    answers = {
        "r-1": httpx.Response(202, json={"status": "CANCELLATION_REQUESTED"}),
        "r-2": httpx.Response(400, json={"status": "ALREADY_COMPLETED"}),
        "r-3": httpx.Response(401, json={"detail": "Invalid Key authorization header"}),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return answers[request.url.path.split("/")[-2]]

    fal = FalQueue("https://queue.fal.test", "k", timeout=2, transport=httpx.MockTransport(handler))
    app = "fal-ai/kling-video/v3/pro/text-to-video"
    assert fal.cancel(task_id_of(app, "r-1")) == "cancellation_requested"
    assert fal.cancel(task_id_of(app, "r-2")) == "already_completed"  # too late: no error
    with pytest.raises(ExternalError) as refused:
        fal.cancel(task_id_of(app, "r-3"))
    assert refused.value.code == "fal_unauthorized"
    assert seen[0] == ("PUT", "/fal-ai/kling-video/requests/r-1/cancel")  # the app path only


def test_a_refusal_fits_the_column_it_is_kept_in() -> None:
    """However long a route's limits, the stored reason fits jobs.fal_refusal (200)."""
    from api.account_routes import MAX_REFUSAL, fal_refusal_of
    from models.job import Job

    assert Job.__table__.c.fal_refusal.type.length == MAX_REFUSAL
    roles = {f"role_{i:03d}_with_a_long_name" for i in range(20)}
    why = fal_refusal_of("kling-3.0/video", "x", {"mode": "pro"}, roles)
    assert why is not None
    assert why.startswith("fal's kling-3.0/video takes no role_000")
    assert len(why) == MAX_REFUSAL
