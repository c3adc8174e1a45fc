"""Inputs of every kind, checked without a running stack: files recognised by their bytes,
durations read from headers, a chained job's file handed on, and Kie's catalogue answers
(hostile ones included) read into drift."""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import pytest

from catalogue import get_catalogue
from catalogue.drift import compare, fields_of, json_schema_of, proposed_entry
from core.files import sniff
from media.probe import NotMedia, input_seconds
from sandbox.videos import sample_mp4
from upstreams.kie_catalogue import price_cases

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def wav(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, ("image", "image/png")),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, ("image", "image/jpeg")),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8, ("video", "video/mp4")),
        (b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 8, ("video", "video/quicktime")),
        (b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 8, ("audio", "audio/mp4")),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 20 + b"webm", ("video", "video/webm")),
        (b"ID3\x04" + b"\x00" * 20, ("audio", "audio/mpeg")),
        (b"OggS" + b"\x00" * 20, ("audio", "audio/ogg")),
        (b"fLaC" + b"\x00" * 20, ("audio", "audio/flac")),
        (b"<html>nope</html>", None),
    ],
)
def test_files_are_known_by_their_bytes(data: bytes, expected: tuple[str, str] | None) -> None:
    assert sniff(data) == expected


def test_a_wav_file_is_audio_and_lasts_what_it_says() -> None:
    data = wav(2.5)
    assert sniff(data) == ("audio", "audio/wav")
    assert input_seconds(data, "audio") == pytest.approx(2.5, abs=0.01)


def test_a_real_video_lasts_what_it_says_and_is_no_audio_file_by_kind() -> None:
    data = sample_mp4(seconds=2.0)
    assert input_seconds(data, "video") == pytest.approx(2.0, abs=0.2)
    with pytest.raises(NotMedia):
        input_seconds(PNG, "video")


def test_a_huge_frame_is_not_an_input_video() -> None:
    # Only the headers are read: a frame larger than 4K is refused without decoding it.
    data = sample_mp4(seconds=0.2, width=4200, height=64)
    with pytest.raises(NotMedia, match="larger than 4096"):
        input_seconds(data, "video")


def _live(schema_edit: Any = None) -> tuple[dict[str, str], dict[str, Any]]:
    import tomllib

    from sandbox.schemas import SCHEMAS

    with SCHEMAS.open("rb") as f:
        transcribed = tomllib.load(f)["jobs"]
    if schema_edit:
        schema_edit(transcribed)
    live = {m: "active" for m in transcribed}
    schemas = {m: fields_of(json_schema_of(f, m)) for m, f in transcribed.items()}
    return live, schemas


def test_the_catalogue_is_in_step_with_its_transcription() -> None:
    live, schemas = _live()
    drift = compare(get_catalogue(), live, schemas)
    assert not drift.any, drift.report()


def test_drift_names_a_removed_enum_value_a_required_field_and_a_tighter_limit() -> None:
    def edit(models: dict[str, Any]) -> None:
        fields = models["kling-2.6/text-to-video"]
        fields["aspect_ratio"] = {**fields["aspect_ratio"], "enum": ["16:9", "9:16"]}
        fields["style"] = {"type": "string", "required": True}
        fields["prompt"] = {**fields["prompt"], "maxLength": 500}

    live, schemas = _live(edit)
    drift = compare(get_catalogue(), live, schemas)
    changes = drift.changes["kling-2.6/text-to-video"]
    assert "aspect_ratio: Kie no longer takes ['1:1']" in changes
    assert "Kie now requires style" in changes
    assert "prompt: Kie's limit is 500, ours 1000" in changes


def test_drift_names_new_removed_and_paused_models_and_moved_prices() -> None:
    live, schemas = _live()
    live["acme/new"] = "active"
    schemas["acme/new"] = {"prompt": {"type": "string", "required": True}}
    del live["wan/2-6-text-to-video"]
    live["hailuo/02-text-to-video-standard"] = "paused"
    prices = {"kling-2.6/text-to-video": [{"when": {}, "per_second": 20, "per_task": 0}]}
    drift = compare(get_catalogue(), live, schemas, prices)
    assert drift.new == ["acme/new"]
    assert drift.removed == ["wan/2-6-text-to-video"]
    assert drift.paused == {"hailuo/02-text-to-video-standard": "paused"}
    assert drift.prices == {"kling-2.6/text-to-video": (55.0, 100.0)}
    assert drift.proposed["acme/new"]["status"] == "paused"
    assert "1 new" in drift.summary()


def test_a_proposed_entry_maps_kies_fields_to_roles_and_params() -> None:
    entry = proposed_entry(
        "acme/video-upscale",
        {
            "video_url": {"type": "string", "required": True},
            "factor": {"type": "string", "enum": ["2", "4"], "required": True},
        },
    )
    assert entry["kind"] == "upscale"
    assert entry["prompt"] == {"taken": False}
    assert entry["roles"]["video"] == {
        "field": "video_url",
        "shape": "string",
        "kind": "video",
        "min": 1,
        "max": 1,
    }
    assert entry["params"]["factor"]["default"] == "2"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "cases",
        [{"when": {"a": {"nested": 1}}, "per_second": 3}],
        [{"per_second": -1}],
        [{"per_second": float("nan")}],
        [{"per_second": True}],
        [{"per_second": 0, "per_task": 0}],
        [{"per_task": 1e12}],
    ],
)
def test_hostile_price_answers_give_no_price(raw: Any) -> None:
    assert price_cases(raw) is None


def test_a_sane_price_answer_is_kept() -> None:
    cases = price_cases([{"when": {"sound": True}, "per_second": 22}, {"per_second": 11}, 7])
    assert cases == [
        {"when": {"sound": True}, "per_second": 22.0, "per_task": 0.0},
        {"when": {}, "per_second": 11.0, "per_task": 0.0},
    ]


def test_without_public_url_a_chained_video_is_uploaded_to_kie_byte_for_byte() -> None:
    from types import SimpleNamespace

    from core.config import get_settings
    from media import store
    from worker.upload import _chained_url

    data = sample_mp4(seconds=0.5)
    key = "videos/job_chain_test/0-abc.mp4"
    store.put_bytes(key, data, "video/mp4")
    earlier = SimpleNamespace(
        result={"videos": [{"key": key, "content_type": "video/mp4", "archived": True}]}
    )
    session: Any = SimpleNamespace(get=lambda model, job_id: earlier)
    sent: list[tuple[bytes, str, str]] = []

    class Upload:
        def upload(self, body: bytes, *, name: str, content_type: str) -> str:
            sent.append((body, name, content_type))
            return "https://files.example/x.mp4"

    outbound: Any = SimpleNamespace(kie_upload=Upload(), imgbb=None)
    settings = get_settings().model_copy(update={"public_url": None})
    url = _chained_url(
        session, {"job": "job_chain_test", "index": 0}, outbound, settings, name="job_b-0"
    )
    assert url == "https://files.example/x.mp4"
    assert sent == [(data, "job_b-0.mp4", "video/mp4")]
    store.delete(key)


def test_a_hostile_enum_in_kies_schema_is_bounded() -> None:
    huge = {"type": "string", "enum": [str(n) for n in range(100_000)] + [{"x": 1}]}
    fields = fields_of({"properties": {"input": {"properties": {"mode": huge}}}})
    assert fields is not None
    assert len(fields["mode"]["enum"]) == 200
    assert all(isinstance(v, str) for v in fields["mode"]["enum"])
