"""A result "video" is read with a time and memory bound, only in real video codecs and with
frames no larger than 4K, and its poster is one scaled frame (issue 24, item 6: a 446 kB MP4
with one 12000×12000 PNG frame once took 14.6 s and 2.7 GB)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest

from media.bounded import inspect
from media.probe import POSTER_SIDE, NotAVideo
from sandbox.videos import sample_mp4


def encode(path: Path, codec: str, width: int, height: int, pix_fmt: str) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        frame = av.VideoFrame(width, height, pix_fmt)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def test_a_generated_video_is_read_and_its_poster_taken(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(sample_mp4())
    info, poster = inspect(video)
    assert info.video_codec == "h264"
    assert info.has_audio
    assert poster[:2] == b"\xff\xd8"  # a JPEG


def test_a_4k_video_passes_and_its_poster_is_scaled(tmp_path: Path) -> None:
    info, poster = inspect(encode(tmp_path / "4k.mp4", "libx264", 3840, 2160, "yuv420p"))
    assert (info.width, info.height) == (3840, 2160)
    with av.open(io.BytesIO(poster)) as jpeg:
        frame = next(jpeg.decode(video=0))
        assert max(frame.width, frame.height) == POSTER_SIDE


def test_an_image_codec_in_an_mp4_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(NotAVideo, match="codec png"):
        inspect(encode(tmp_path / "png.mp4", "png", 3000, 3000, "rgb24"))


def test_frames_past_4k_are_refused_before_any_is_decoded(tmp_path: Path) -> None:
    with pytest.raises(NotAVideo, match="larger than 4096"):
        inspect(encode(tmp_path / "wide.mp4", "libx264", 4200, 200, "yuv420p"))


def test_the_probe_is_bounded_in_time_and_memory(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(sample_mp4())
    with pytest.raises(NotAVideo, match="longer than"):
        inspect(video, seconds=0.001)
    with pytest.raises(NotAVideo, match="bounds"):
        inspect(video, memory=60 * 1024**2)  # not even PyAV fits: the child is stopped


def test_garbage_is_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500)
    with pytest.raises(NotAVideo):
        inspect(junk)


def test_probes_reuse_a_helper_and_survive_its_death(tmp_path: Path) -> None:
    from media import bounded

    video = tmp_path / "v.mp4"
    video.write_bytes(sample_mp4())
    inspect(video)
    [helper] = [h for h in bounded._idle if h.memory == bounded.PROBE_MEMORY]
    inspect(video)  # the same helper again: a fork, not a new Python
    assert [h for h in bounded._idle if h.memory == bounded.PROBE_MEMORY] == [helper]
    helper.process.kill()
    helper.process.wait()
    info, _ = inspect(video)  # a dead helper is replaced, the probe still answers
    assert info.video_codec == "h264"
    assert helper not in bounded._idle
