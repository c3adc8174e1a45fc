"""The helper process of media.bounded: `python -m media.probe_child MEMORY_BYTES`.

It imports PyAV once, then serves probes one at a time, one JSON line in and one out on its
stdin and stdout. It never reads a video itself: each probe runs in a child it forks for that
probe alone, which bounds its own address space first and reports through a pipe; the helper
kills the child at the probe's deadline. So a probe costs a fork, not a Python start and an
FFmpeg import, and a hostile file still gets a fresh, bounded, killable process.

Request:  {"video": PATH, "poster": PATH, "seconds": S}
Answer:   {"ok": {VideoInfo fields}} | {"refused": WHY} | {"timeout": S} | {"bounds": EXIT}
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any


def _probe_in_child(video: str, poster_out: str, memory: int, report: int) -> None:
    """In the forked child: bound the address space, read the file, report, exit."""
    code = 0
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        from media.probe import NotAVideo, poster, probe

        try:
            info = probe(Path(video))
            Path(poster_out).write_bytes(poster(Path(video)))
            answer: dict[str, Any] = {"ok": asdict(info)}
        except NotAVideo as exc:
            answer = {"refused": str(exc)[-300:]}
        os.write(report, json.dumps(answer).encode())
    except BaseException:  # MemoryError, anything: no answer; the helper says "bounds"
        code = 1
    finally:
        os._exit(code)


def _read_all(fd: int, deadline: float) -> bytes | None:
    """What the child wrote before closing its end; None at the deadline."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def serve_one(request: dict[str, Any], memory: int) -> dict[str, Any]:
    seconds = float(request["seconds"])
    deadline = time.monotonic() + seconds
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _probe_in_child(str(request["video"]), str(request["poster"]), memory, write_end)
    os.close(write_end)
    try:
        data = _read_all(read_end, deadline)
    finally:
        os.close(read_end)
    if data is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return {"timeout": seconds}
    _, status = os.waitpid(pid, 0)
    if data:
        return dict(json.loads(data))
    return {"bounds": os.waitstatus_to_exitcode(status)}


def main(memory: int) -> int:
    import media.probe  # noqa: F401  (PyAV and FFmpeg, loaded once for every child)

    for line in sys.stdin:
        answer = serve_one(json.loads(line), memory)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
