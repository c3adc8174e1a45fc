"""What soraq keeps on disk is its user's alone (issue 24, item 12): var/ 0700, the database
files 0600 wherever DATABASE_URL puts them, secrets 0600 from their first byte."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from core.private import private_folder, write_private
from models.db import make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _usual_umask() -> object:
    before = os.umask(0o022)  # what a fresh shell has: files 0644, folders 0755 by default
    yield None
    os.umask(before)


def test_an_older_readable_var_folder_is_taken_back_to_0700(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    os.chmod(var, 0o755)
    private_folder(var)
    assert mode(var) == 0o700
    assert mode(private_folder(tmp_path / "fresh" / "var")) == 0o700


def test_a_secret_is_0600_even_over_a_readable_file(tmp_path: Path) -> None:
    key = tmp_path / "demo-api-key"
    key.write_text("old\n")
    os.chmod(key, 0o644)
    write_private(key, "sk_new\n")
    assert mode(key) == 0o600
    assert key.read_text() == "sk_new\n"
    write_private(tmp_path / "admin-token", "t\n")
    assert mode(tmp_path / "admin-token") == 0o600


def test_the_sqlite_database_and_its_wal_are_0600_wherever_it_lives(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "data" / "soraq.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x TEXT)"))
            connection.execute(text("INSERT INTO t VALUES ('webhook secret')"))
        with engine.connect() as connection:  # a reader keeps the -wal and -shm in place
            assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 1
            for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
                assert path.exists(), path
                assert mode(path) == 0o600, path
    finally:
        engine.dispose()
    assert mode(database.parent) == 0o700


def test_files_an_older_soraq_left_readable_are_tightened(tmp_path: Path) -> None:
    database = tmp_path / "soraq.db"
    for path in (database, Path(f"{database}-wal")):
        path.write_bytes(b"")
        os.chmod(path, 0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o600
    assert mode(Path(f"{database}-wal")) == 0o600


def test_the_cli_keeps_var_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import get_settings
    from soraq.cli import main

    var = tmp_path / "var"
    monkeypatch.setenv("VAR_DIR", str(var))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{var / 'soraq.db'}")
    get_settings.cache_clear()
    try:
        assert main(["migrate"]) == 0
    finally:
        get_settings.cache_clear()
    assert mode(var) == 0o700
    assert mode(var / "soraq.db") == 0o600
