"""Real, small MP4 files for the sandbox to hand out as generated videos: H.264 video with an
AAC audio track, made once with PyAV (whose wheels carry FFmpeg). A `free` box pads a file to
any size a test asks for and leaves it a valid MP4."""

from __future__ import annotations

import io
import math
import struct
from fractions import Fraction
from functools import cache

import av


@cache
def sample_mp4(seconds: float = 1.0, width: int = 64, height: int = 48, fps: int = 10) -> bytes:
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        frames = int(seconds * fps)
        for n in range(frames):
            shade = int(255 * n / max(frames - 1, 1))
            frame = av.VideoFrame(width, height, "rgb24")
            plane = frame.planes[0]
            row = bytes((shade, 128, 255 - shade)) * width
            plane.update((row + b"\0" * (plane.line_size - len(row))) * height)
            frame.pts = n
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples_per_frame, rate = 1024, 16000
        for n in range(int(seconds * rate / samples_per_frame)):
            tone = b"".join(
                struct.pack(
                    "<f", 0.2 * math.sin(2 * math.pi * 440 * (i + n * samples_per_frame) / rate)
                )
                for i in range(samples_per_frame)
            )
            sound = av.AudioFrame(format="fltp", layout="mono", samples=samples_per_frame)
            sound.planes[0].update(tone)
            sound.sample_rate = rate
            sound.pts = n * samples_per_frame
            for packet in audio.encode(sound):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return out.getvalue()


def padded(data: bytes, size: int) -> bytes:
    """`data` grown to `size` bytes with a trailing `free` box (readers skip it)."""
    extra = size - len(data)
    if extra < 8:
        return data
    return data + struct.pack(">I4s", extra, b"free") + b"\0" * (extra - 8)


def parse_size(text: str) -> int:
    """ "5MB", "200kB", "1024" → bytes."""
    units = {"gb": 1 << 30, "mb": 1 << 20, "kb": 1 << 10, "b": 1}
    lowered = text.lower()
    for unit, factor in units.items():
        if lowered.endswith(unit):
            return int(float(lowered.removesuffix(unit)) * factor)
    return int(float(lowered))
