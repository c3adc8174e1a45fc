"""Throwaway Redis, PostgreSQL and S3 (moto) servers on this machine, for the test suite and
benchmarks.

Each runs from a temporary folder on a free port and is stopped by its pid. As root, Postgres
runs as the `postgres` user (initdb refuses root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.stack import free_port, wait_port

PG_BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


class Unavailable(RuntimeError):
    """The server's binaries are not on this machine."""


def _find(binary: str, extra_dirs: tuple[str, ...] = ()) -> str:
    for folder in extra_dirs:
        candidate = Path(folder) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(binary)
    if found is None:
        raise Unavailable(f"{binary} is not installed")
    return found


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class Redis:
    port: int
    folder: Path
    binary: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Postgres:
    port: int
    folder: Path
    bin_dir: str

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([f"{self.bin_dir}/pg_ctl", "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
        )

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    f"{self.bin_dir}/initdb",
                    "-D",
                    str(self.data),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        # Durability off: a test server, started and thrown away in seconds.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._ctl("-w", "-l", str(self.folder / "postgres.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "stop")

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_redis() -> Redis:
    redis = Redis(free_port(), Path(tempfile.mkdtemp(prefix="soraq-redis-")), _find("redis-server"))
    redis.start()
    return redis


def start_postgres() -> Postgres:
    bin_dir = str(Path(_find("pg_ctl", PG_BIN_DIRS)).parent)
    _find("initdb", (bin_dir,))
    postgres = Postgres(free_port(), Path(tempfile.mkdtemp(prefix="soraq-pg-")), bin_dir)
    postgres.init()
    postgres.start()
    return postgres


@dataclass
class S3Server:
    """moto's standalone server: a real S3-protocol endpoint over HTTP (MinIO is not packaged
    for Debian or PyPI; docker-compose uses MinIO)."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, bucket: str) -> dict[str, str]:
        return {
            "STORAGE_URL": f"s3://{bucket}/media",
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }

    def create_bucket(self, bucket: str) -> None:
        import httpx

        httpx.put(f"{self.endpoint}/{bucket}", timeout=10).raise_for_status()

    def start(self) -> None:
        binary = _find("moto_server", (str(Path(sys.executable).parent),))
        self.process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import httpx

                if httpx.get(self.endpoint, timeout=1).status_code < 500:
                    return
            except Exception:
                time.sleep(0.1)
        raise Unavailable("moto_server did not start")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_s3() -> S3Server:
    server = S3Server(free_port())
    server.start()
    return server
