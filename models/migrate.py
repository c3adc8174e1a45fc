"""Bringing a database's schema to the code's head with Alembic, from any working directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The migrations ship beside this package (a folder of scripts Alembic runs, not imported).
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(database_url: str | None = None) -> Any:
    """Alembic's config for the installed migrations, independent of the working directory."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)
