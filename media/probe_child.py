"""The child process of media.bounded: it bounds its own address space *before* PyAV (and
FFmpeg) are imported, then probes the video and writes its poster. Imports nothing else of
soraq at module level: `python -m media.probe_child VIDEO POSTER_OUT MEMORY_BYTES`."""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict
from pathlib import Path

REFUSED = 3  # the exit code for "not a video" (the reason on stderr)


def main(video: str, poster_out: str, memory: int) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    from media.probe import NotAVideo, poster, probe

    try:
        info = probe(Path(video))
        Path(poster_out).write_bytes(poster(Path(video)))
    except NotAVideo as exc:
        print(str(exc), file=sys.stderr)
        return REFUSED
    print(json.dumps(asdict(info)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
