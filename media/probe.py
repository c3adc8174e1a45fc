"""What a video file is, read with PyAV (FFmpeg ships in its wheels): duration, size, frame
rate, codecs, audio — and a JPEG poster from its first frame. A file that does not decode as
video is refused: soraq never marks a job succeeded with a broken file."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av


class NotAVideo(ValueError):
    pass


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float | None
    width: int
    height: int
    fps: float | None
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    content_type: str


_CONTENT_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}


# Codecs a generated video comes in (h264 from most models; the others are real video codecs
# too): an image codec wrapped in an MP4 (a 12000×12000 PNG "frame" once took 2.7 GB to
# decode) is not a result. No frame side past the catalogue's largest output, 4K.
RESULT_VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
MAX_RESULT_SIDE = 4096
POSTER_SIDE = 1280  # the poster is scaled to this side, whatever the video's size


def probe(path: Path) -> VideoInfo:
    """What the video is, from its headers, and one frame decoded (on one thread) to prove it
    is video. Run it through media.bounded, which bounds its time and memory."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise NotAVideo("the file has no video stream")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            codec = video.codec_context.name
            if codec not in RESULT_VIDEO_CODECS:
                raise NotAVideo(f"the video codec {codec} is not a video codec soraq keeps")
            side = max(video.codec_context.width or 0, video.codec_context.height or 0)
            if side > MAX_RESULT_SIDE:
                raise NotAVideo(f"frames of {side} px are larger than {MAX_RESULT_SIDE} px")
            video.thread_type, video.thread_count = "SLICE", 1
            # Decoding one frame proves the stream is video, not a container around garbage.
            next(container.decode(video=0))
            duration = (
                container.duration / av.time_base
                if container.duration
                else (
                    float(video.duration * video.time_base)
                    if video.duration and video.time_base
                    else None
                )
            )
            names = (container.format.name or "").split(",")
            kind = next((t for n, t in _CONTENT_TYPES.items() if n in names), "video/mp4")
            return VideoInfo(
                duration_s=round(duration, 3) if duration else None,
                width=video.codec_context.width,
                height=video.codec_context.height,
                fps=round(float(video.average_rate), 3) if video.average_rate else None,
                video_codec=video.codec_context.name,
                has_audio=audio is not None,
                audio_codec=audio.codec_context.name if audio is not None else None,
                content_type=kind,
            )
    except NotAVideo:
        raise
    except (av.error.FFmpegError, StopIteration, ValueError, OSError) as exc:
        raise NotAVideo(f"the file does not decode as video ({type(exc).__name__})") from None


def poster(path: Path) -> bytes:
    """The first frame as a JPEG no larger than POSTER_SIDE (FFmpeg's mjpeg encoder: no
    image library needed). Call it after `probe` accepted the file."""
    with av.open(str(path)) as container:
        container.streams.video[0].thread_count = 1
        frame = next(container.decode(video=0))
        scale = min(1.0, POSTER_SIDE / max(frame.width, frame.height, 1))
        # Even sides: yuv420 halves them.
        width = max(2, int(frame.width * scale) // 2 * 2)
        height = max(2, int(frame.height * scale) // 2 * 2)
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuvj420p"
        encoder.time_base = frame.time_base or Fraction(1, 25)
        packets = encoder.encode(frame.reformat(width=width, height=height, format="yuvj420p"))
        packets += encoder.encode(None)
        return b"".join(bytes(p) for p in packets)


class NotMedia(ValueError):
    pass


# Video codecs an input may carry (what the models' pages accept, and nothing exotic), and
# the largest frame side taken (the catalogue's largest output is 4K).
INPUT_VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "prores"})
MAX_INPUT_SIDE = 4096


def input_seconds(data: bytes, kind: str) -> float | None:
    """How long an input video or audio file lasts, read from its container's metadata
    (nothing is decoded: a hostile file costs no more than its headers). Raises NotMedia
    when the bytes are not a file of that kind soraq would send on."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if kind == "video":
                if not container.streams.video:
                    raise NotMedia("the file has no video stream")
                stream = container.streams.video[0]
                codec = stream.codec_context.name
                if codec not in INPUT_VIDEO_CODECS:
                    raise NotMedia(f"the video codec {codec} is not one models take")
                side = max(stream.codec_context.width or 0, stream.codec_context.height or 0)
                if side > MAX_INPUT_SIDE:
                    raise NotMedia(f"frames of {side} px are larger than {MAX_INPUT_SIDE} px")
            elif not container.streams.audio:
                raise NotMedia("the file has no audio stream")
            if container.duration:
                return round(container.duration / av.time_base, 3)
            first = (container.streams.video or container.streams.audio)[0]
            if first.duration and first.time_base:
                return round(float(first.duration * first.time_base), 3)
            return None
    except NotMedia:
        raise
    except (av.error.FFmpegError, ValueError, OSError, IndexError) as exc:
        raise NotMedia(f"the file does not open as {kind} ({type(exc).__name__})") from None
