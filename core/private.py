"""Files only soraq's own user may read: its var/ folder (the SQLite database, uploads, the
file store's videos, generated secrets) 0700, database files 0600 wherever DATABASE_URL puts
them, and secrets created with their mode — never written first and tightened after."""

from __future__ import annotations

import os
import stat
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_folder(path: Path) -> Path:
    """Create the folder 0700, or take an existing one (an older soraq's 0755) back to it."""
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(FOLDER_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a secret into a file that is 0600 from its first byte (an existing file too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def private_database(path: Path) -> None:
    """The SQLite file exists 0600 before SQLite opens it (SQLite gives its -wal and -shm
    the database file's mode), and files an older soraq left readable are tightened."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in _SQLITE_SIDE_FILES)):
        try:
            if stat.S_IMODE(candidate.stat().st_mode) & 0o077:
                candidate.chmod(FILE_MODE)
        except FileNotFoundError:
            continue
