"""Errors every layer may raise about a request, beside the settings at the bottom."""

from __future__ import annotations

from typing import Any


class InvalidRequest(ValueError):
    """A request refused as it stands (a 422): `field` names the offending request field.

    `code` is the stable machine code clients see (`validation_error` unless more precise, as
    `model_retired`); `extra` goes into the error body beside it."""

    def __init__(
        self, field: str, message: str, *, code: str = "validation_error", **extra: Any
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code
        self.extra = extra
