"""Probing a result video and taking its poster in a child process with a time and a memory
bound: FFmpeg decodes what an upstream sent, and a hostile file can ask for gigabytes or
minutes. The child limits its own address space before it imports PyAV; the parent kills it
at the deadline. A worker thread only waits on it.

    python -m media.probe_child VIDEO POSTER_OUT   (prints the VideoInfo as JSON)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from media.probe import NotAVideo, VideoInfo
from media.probe_child import REFUSED

PROBE_SECONDS = 60.0  # one frame of a 4K video takes well under a second
PROBE_MEMORY = 1024**3  # address space: Python, PyAV and one 4K frame fit several times


def inspect(
    path: Path, *, seconds: float = PROBE_SECONDS, memory: int = PROBE_MEMORY
) -> tuple[VideoInfo, bytes]:
    """(what the video is, its poster JPEG), or NotAVideo — also when the file takes more
    than `seconds` or `memory` bytes of address space to read."""
    with tempfile.TemporaryDirectory(prefix="soraq-poster-", dir=path.parent) as folder:
        out = Path(folder) / "poster.jpg"
        try:
            child = subprocess.run(
                [sys.executable, "-m", "media.probe_child", str(path), str(out), str(memory)],
                capture_output=True,
                timeout=seconds,
                text=True,
                env={**os.environ, "PYTHONPATH": _root()},
            )
        except subprocess.TimeoutExpired:
            raise NotAVideo(f"reading the file took longer than {seconds:g} s") from None
        if child.returncode == REFUSED:
            raise NotAVideo(child.stderr.strip()[-300:] or "not a video")
        if child.returncode != 0:
            # Killed by the memory bound (MemoryError, or a signal), or FFmpeg crashed.
            raise NotAVideo(f"reading the file exceeded soraq's bounds (exit {child.returncode})")
        info = VideoInfo(**json.loads(child.stdout))
        return info, out.read_bytes()


def _root() -> str:
    here = Path(__file__).resolve().parents[1]
    existing = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{existing}" if existing else str(here)
