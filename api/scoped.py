"""A middleware that only some paths need, kept off every other request."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class UnderPrefix:
    """Runs `middleware` for requests whose path starts with `prefix`; the rest go straight
    to the app. (The dashboard's cookie session costs every API request a cookie parse and a
    wrapped `send` otherwise: 3 % of POST /jobs' CPU.)"""

    def __init__(self, app: ASGIApp, *args: Any, **options: Any) -> None:
        # `middleware` and `prefix` come as keywords (Starlette passes add_middleware's on).
        middleware, self.prefix = options.pop("middleware"), options.pop("prefix")
        self.app = app
        self.wrapped = middleware(app, *args, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope.get("path", "")).startswith(self.prefix):
            await self.wrapped(scope, receive, send)
        else:
            await self.app(scope, receive, send)
