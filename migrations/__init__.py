"""Alembic's migration scripts (run by `soraq migrate`, found by path, never imported by
runtime code). May import models/ and core/."""
