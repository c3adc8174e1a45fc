"""Inputs of every kind, and chains: a job's input may be a video, an audio file or an
earlier job of the same client — its archived video (handed on byte for byte) or its
upstream task (extend, upscale). Each kind is checked by its bytes, not its name."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import wave
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def unique(prompt: str) -> str:
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


def wav(seconds: float = 3.0) -> bytes:
    """A real WAV file: silence, 8 kHz mono."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))
    return out.getvalue()


def fetched(stack: Stack, prompt: str | None = None) -> list[dict[str, Any]]:
    calls = stack.calls("inputFetch")
    return [c for c in calls if prompt is None or c["prompt"] == prompt]


def created(stack: Stack, model: str) -> list[dict[str, Any]]:
    return [c for c in stack.calls("createTask") if c["model"] == model and c["code"] == 200]


def test_a_video_upscale_takes_an_earlier_jobs_video_byte_for_byte(stack: Stack) -> None:
    first = stack.create(prompt=unique("a lake at dawn"), model="kling-2.6/text-to-video")
    done = stack.wait(first["id"])
    assert done["status"] == "succeeded"
    archived = done["result"]["videos"][0]["sha256"]

    before = len(created(stack, "topaz/video-upscale"))
    job = stack.create(model="topaz/video-upscale", inputs=[{"role": "video", "job": first["id"]}])
    shown = job["input"]["inputs"][0]
    assert (shown["role"], shown["kind"], shown["job"]) == ("video", "video", first["id"])
    assert shown["job_url"] == f"/jobs/{first['id']}"
    assert stack.wait(job["id"])["status"] == "succeeded"
    [call] = created(stack, "topaz/video-upscale")[before:]
    url = call["input"]["video_url"]
    # The upscaler fetched the very bytes soraq archived (a signed soraq link: PUBLIC_URL).
    [fetch] = [f for f in fetched(stack) if f["url"] == url]
    assert fetch["status_code"] == 200
    assert fetch["sha256"] == archived


def test_grok_extend_continues_an_earlier_grok_task_by_its_id(stack: Stack) -> None:
    first = stack.create(prompt=unique("a fox runs"), model="grok-imagine/text-to-video")
    done = stack.wait(first["id"])
    assert done["status"] == "succeeded"
    task_id = done["kie_task_id"]
    prompt = unique("the fox jumps")
    job = stack.create(
        prompt=prompt,
        model="grok-imagine/extend",
        inputs=[{"role": "task", "job": first["id"]}],
        extend_times=10,
    )
    assert stack.wait(job["id"])["status"] == "succeeded"
    [call] = [c for c in stack.calls("createTask") if c["prompt"] == prompt]
    assert call["input"]["task_id"] == task_id
    assert call["input"]["extend_times"] == 10
    # The estimate follows the extension's length.
    assert job["usage"]["credits_estimated"] == 30


def test_a_lip_sync_job_takes_an_uploaded_audio_file(stack: Stack) -> None:
    audio = wav(3.0)
    prompt = unique("she says hello")
    job = stack.create(
        prompt=prompt,
        model="kling/ai-avatar-standard",
        inputs=[
            {"role": "first_frame", "url": "https://1.1.1.1/test/face.png"},
            {"role": "audio", "base64": base64.b64encode(audio).decode()},
        ],
    )
    shown = [i for i in job["input"]["inputs"] if i["role"] == "audio"][0]
    assert shown["content_type"] == "audio/wav"
    assert shown["seconds"] == pytest.approx(3.0, abs=0.05)
    assert stack.wait(job["id"])["status"] == "succeeded"
    # Uploaded to Kie's File Upload API under a name that says what it is; Kie fetched it.
    upload = [
        c for c in stack.calls("fileUpload") if c["sha256"] == hashlib.sha256(audio).hexdigest()
    ]
    assert upload
    assert upload[0]["name"].endswith(".wav")
    [fetch] = [f for f in fetched(stack, prompt) if f["field"] == "audio_url"]
    assert fetch["sha256"] == hashlib.sha256(audio).hexdigest()
    assert fetch["content_type"].startswith("audio/")


def test_a_video_and_an_audio_file_as_multipart_parts(stack: Stack) -> None:
    # A real MP4 from the sandbox's own generator, as a client would upload a clip.
    from sandbox.videos import sample_mp4

    video, audio = sample_mp4(), wav(2.5)
    response = stack.api.post(
        "/jobs",
        data={"model": "volcengine/video-to-video-lip-sync", "mode": "lite"},
        files={
            "input_video": ("clip.bin", video, "application/octet-stream"),
            "input_audio": ("voice.bin", audio, "application/octet-stream"),
        },
    )
    assert response.status_code == 202, response.text
    job = response.json()
    kinds = {i["role"]: i["content_type"] for i in job["input"]["inputs"]}
    assert kinds == {"video": "video/mp4", "audio": "audio/wav"}  # by their bytes
    assert stack.wait(job["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"role": "video", "base64": base64.b64encode(PNG).decode()}], "takes a video"),
        ([{"role": "video", "url": "http://1.1.1.1/v.mp4"}], "https"),
        ([{"role": "audio", "url": "https://1.1.1.1/a.mp3"}], "takes no audio input"),
        ([{"role": "video", "job": "job_doesnotexist", "url": "https://1.1.1.1/v.mp4"}], "one of"),
    ],
)
def test_a_wrong_input_is_a_422_naming_it(
    stack: Stack, inputs: list[dict[str, Any]], message: str
) -> None:
    response = stack.api.post("/jobs", json={"model": "topaz/video-upscale", "inputs": inputs})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["fields"][0]["field"].startswith("inputs"), error
    assert message in error["message"], error


def test_a_png_given_as_a_video_names_inputs_0(stack: Stack) -> None:
    response = stack.api.post(
        "/jobs",
        json={
            "model": "topaz/video-upscale",
            "inputs": [{"role": "video", "base64": base64.b64encode(PNG).decode()}],
        },
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "inputs[0]"


def test_a_too_short_audio_file_is_refused_by_its_duration(stack: Stack) -> None:
    response = stack.api.post(
        "/jobs",
        json={
            "prompt": "a song",
            "model": "bytedance/seedance-2",
            "inputs": [{"role": "reference_audio", "base64": base64.b64encode(wav(1.0)).decode()}],
        },
    )
    assert response.status_code == 422, response.text
    assert "at least 2 s" in response.json()["error"]["message"]


def test_seedance_frames_and_references_cannot_be_mixed(stack: Stack) -> None:
    response = stack.api.post(
        "/jobs",
        json={
            "prompt": "a cat",
            "model": "bytedance/seedance-2",
            "inputs": [
                {"role": "first_frame", "url": "https://1.1.1.1/a.png"},
                {"role": "reference", "url": "https://1.1.1.1/b.png"},
            ],
        },
    )
    assert response.status_code == 422
    assert "cannot take first_frame and reference together" in response.json()["error"]["message"]
    alone = stack.api.post(
        "/jobs",
        json={
            "prompt": "a cat",
            "model": "bytedance/seedance-2",
            "inputs": [{"role": "last_frame", "url": "https://1.1.1.1/b.png"}],
        },
    )
    assert alone.status_code == 422
    assert "last_frame only with a first_frame" in alone.json()["error"]["message"]


@pytest.fixture
def other_client(stack: Stack) -> Iterator[httpx.Client]:
    name = f"other-{uuid.uuid4().hex[:8]}"
    out = stack.local.cli("clients", "create", name)
    key = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)["API key"].strip()
    with httpx.Client(
        base_url=stack.local.api_url, timeout=30, headers={"authorization": f"Bearer {key}"}
    ) as client:
        yield client


def test_another_clients_job_is_not_found(stack: Stack, other_client: httpx.Client) -> None:
    mine = stack.create(prompt=unique("mine"), model="grok-imagine/text-to-video")
    assert stack.wait(mine["id"])["status"] == "succeeded"
    for role, model in (("task", "grok-imagine/upscale"), ("video", "topaz/video-upscale")):
        response = other_client.post(
            "/jobs", json={"model": model, "inputs": [{"role": role, "job": mine["id"]}]}
        )
        assert response.status_code == 404, response.text
        assert mine["id"] in response.json()["error"]["message"]


def test_a_task_from_another_family_or_an_unfinished_job_is_refused(stack: Stack) -> None:
    kling = stack.create(prompt=unique("not grok"), model="kling-2.6/text-to-video")
    slow = stack.create(
        prompt=unique("still going [kie:slow=30]"), model="grok-imagine/text-to-video"
    )
    assert stack.wait(kling["id"])["status"] == "succeeded"
    wrong = stack.api.post(
        "/jobs",
        json={"model": "grok-imagine/upscale", "inputs": [{"role": "task", "job": kling["id"]}]},
    )
    assert wrong.status_code == 422
    assert "continues tasks of" in wrong.json()["error"]["message"]
    early = stack.api.post(
        "/jobs",
        json={"model": "grok-imagine/upscale", "inputs": [{"role": "task", "job": slow["id"]}]},
    )
    assert early.status_code == 422
    assert "not succeeded" in early.json()["error"]["message"]
    stack.api.post(f"/jobs/{slow['id']}/cancel")
