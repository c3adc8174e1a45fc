"""Archiving a large result: worker memory and throughput.

A 200 MB MP4 (the sandbox's sample, padded) is served over HTTP on loopback, then archived
the way the worker does it — streamed to disk with SHA-256 on the way, probed with PyAV, a
poster taken, stored through obstore — into a file store and into an S3-protocol server
(moto's), in this process, sampling its RSS. `curl -o` of the same file is the yardstick.

    python -m bench.archive [--mb 200]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

from bench.common import Row, verdict


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Peak:
    """Samples this process's RSS every 20 ms while it runs."""

    def __enter__(self) -> Peak:
        self.start, self.peak, self._stop = rss_mb(), rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def archive_once(url: str, settings: object) -> tuple[float, float]:
    """(seconds, peak RSS growth in MB) for one archive of `url`, as the worker does it."""
    from media import store
    from media.bounded import inspect
    from worker.fetch import fetch

    store.store.cache_clear()
    scratch = store.scratch_folder(settings)  # type: ignore[arg-type]
    with Peak() as peak, tempfile.TemporaryDirectory(dir=scratch) as folder:
        started = time.monotonic()
        path = Path(folder) / "video"
        fetched = fetch(url, path, settings)  # type: ignore[arg-type]
        info, poster_jpeg = inspect(path)
        store.put_bytes(f"bench/{fetched.sha256}.jpg", poster_jpeg, "image/jpeg")
        store.put_file(f"bench/{fetched.sha256}.mp4", path, info.content_type)
        seconds = time.monotonic() - started
    return seconds, peak.peak - peak.start


NAME = "archive a large result: worker RSS growth and throughput"


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args(argv)
    # The runs below point this process's settings at their stores through the environment;
    # the benchmarks after this one (`make bench` runs them in one process) must not inherit
    # a store that is gone.
    with mock.patch.dict(os.environ):
        try:
            return _run(args)
        finally:
            import core.config

            core.config.get_settings.cache_clear()


def _run(args: argparse.Namespace) -> list[Row]:
    from core.config import Settings
    from devstack.services import Unavailable, start_s3
    from sandbox.videos import padded, sample_mp4

    size = args.mb * 1024 * 1024
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="soraq-bench-archive-") as folder:
        source = Path(folder) / "src"
        source.mkdir()
        (source / "big.mp4").write_bytes(padded(sample_mp4(), size))
        server, base = serve(source)
        url = f"{base}/big.mp4"
        try:
            curl_seconds = None
            if shutil.which("curl"):
                started = time.monotonic()
                subprocess.run(["curl", "-s", "-o", os.devnull, url], check=True)
                curl_seconds = time.monotonic() - started
            common = {"upstream_allowed_networks": "127.0.0.1/32", "var_dir": Path(folder)}
            targets: list[tuple[str, dict[str, object]]] = [
                ("file store", {"storage_url": f"file://{folder}/media"})
            ]
            s3 = None
            try:
                s3 = start_s3()
                s3.create_bucket("bench")
                os.environ.update(
                    {k: v for k, v in s3.env("bench").items() if k.startswith("AWS_")}
                )
                targets.append(
                    (
                        "S3 (moto server)",
                        {
                            "storage_url": "s3://bench/media",
                            "s3_endpoint_url": s3.endpoint,
                            "s3_region": "us-east-1",
                        },
                    )
                )
            except Unavailable as exc:
                print(f"archive: S3 server unavailable ({exc}); file store only")
            for label, values in targets:
                settings = Settings(**{**common, **values})  # type: ignore[arg-type]
                import core.config

                core.config.get_settings.cache_clear()
                os.environ["STORAGE_URL"] = str(values["storage_url"])
                if "s3_endpoint_url" in values:
                    os.environ["S3_ENDPOINT_URL"] = str(values["s3_endpoint_url"])
                    os.environ["S3_REGION"] = "us-east-1"
                seconds, growth = archive_once(url, settings)
                rate = args.mb / seconds
                yardstick = f", curl -o {args.mb / curl_seconds:.0f} MB/s" if curl_seconds else ""
                print(
                    f"archive {args.mb} MB to {label:<18} {seconds:6.2f} s  {rate:6.0f} MB/s  "
                    f"RSS +{growth:.1f} MB{yardstick}"
                )
                rows.append(
                    Row(
                        "7",
                        f"{NAME} ({label})",
                        "RSS +≤ 32 MB",
                        f"{args.mb} MB in {seconds:.1f} s = **{rate:.0f} MB/s**"
                        f"{yardstick}; RSS **+{growth:.1f} MB**",
                        verdict(growth <= 32),
                    )
                )
            if s3 is not None:
                s3.close()
        finally:
            server.shutdown()
    return rows


if __name__ == "__main__":
    main()
