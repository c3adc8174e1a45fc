"""Probing a result video and taking its poster in a child process with a time and a memory
bound: FFmpeg decodes what an upstream sent, and a hostile file can ask for gigabytes or
minutes. Each probe runs in a process of its own that limits its address space before it
reads the file, and is killed at the deadline. A worker thread only waits on it.

The probe processes are forked by helpers (`media.probe_child`) that have PyAV loaded
already: 0.16 s and 0.15 s of CPU per probe for a fresh Python that imports PyAV became a fork.
Each worker process keeps idle helpers for reuse, one per probe running at once.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from media.probe import NotAVideo, VideoInfo

PROBE_SECONDS = 60.0  # one frame of a 4K video takes well under a second
PROBE_MEMORY = 1024**3  # address space: Python, PyAV and one 4K frame fit several times
ANSWER_MARGIN = 10.0  # seconds past a probe's deadline a helper has to answer for it


class _Helper:
    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.process = subprocess.Popen(
            [sys.executable, "-m", "media.probe_child", str(memory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": _root()},
            text=True,
        )

    def ask(self, request: dict[str, Any], seconds: float) -> dict[str, Any] | None:
        """The helper's answer, or None when it is gone or did not answer in time (it is
        then stopped: the caller must not reuse it)."""
        process = self.process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            if select.select([process.stdout], [], [], seconds + ANSWER_MARGIN)[0]:
                line = process.stdout.readline()
                if line:
                    return dict(json.loads(line))
        except (OSError, ValueError):
            pass
        self.stop()
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


_idle: list[_Helper] = []
_idle_lock = threading.Lock()


def _take(memory: int) -> _Helper:
    with _idle_lock:
        _idle[:] = [helper for helper in _idle if helper.process.poll() is None]
        for helper in _idle:
            if helper.memory == memory:
                _idle.remove(helper)
                return helper
    return _Helper(memory)


def _give_back(helper: _Helper) -> None:
    with _idle_lock:
        _idle.append(helper)


def inspect(
    path: Path, *, seconds: float = PROBE_SECONDS, memory: int = PROBE_MEMORY
) -> tuple[VideoInfo, bytes]:
    """(what the video is, its poster JPEG), or NotAVideo — also when the file takes more
    than `seconds` or `memory` bytes of address space to read."""
    with tempfile.TemporaryDirectory(prefix="soraq-poster-", dir=path.parent) as folder:
        out = Path(folder) / "poster.jpg"
        request = {"video": str(path), "poster": str(out), "seconds": seconds}
        answer = None
        for _ in range(2):  # a helper that died since its last probe: one fresh try
            helper = _take(memory)
            answer = helper.ask(request, seconds)
            if answer is not None:
                _give_back(helper)
                break
        if answer is None:
            raise NotAVideo("the probe could not be run")
        if "ok" in answer:
            return VideoInfo(**answer["ok"]), out.read_bytes()
        if "refused" in answer:
            raise NotAVideo(str(answer["refused"]) or "not a video")
        if "timeout" in answer:
            raise NotAVideo(f"reading the file took longer than {seconds:g} s")
        # Killed by the memory bound (MemoryError, or a signal), or FFmpeg crashed.
        raise NotAVideo(f"reading the file exceeded soraq's bounds (exit {answer.get('bounds')})")


def _root() -> str:
    here = Path(__file__).resolve().parents[1]
    existing = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{existing}" if existing else str(here)
