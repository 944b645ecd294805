"""Authentication and authorisation as FastAPI dependencies: every route names the permission it needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from fengkong.errors import FengkongError
from fengkong.security import Permission, Principal
from fengkong.service import Engine

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key from `fengkong apikey create`")


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def require(permission: Permission) -> Callable[..., Principal]:
    def dependency(
        engine: Annotated[Engine, Depends(get_engine)],
        key: Annotated[str | None, Depends(api_key_header)],
    ) -> Principal:
        if not key:
            raise FengkongError("missing_api_key", "send an API key in the X-API-Key header", "X-API-Key", 401)
        principal = engine.authenticate(key)
        if principal is None:
            raise FengkongError("invalid_api_key", "the API key is unknown or revoked", "X-API-Key", 401)
        if not principal.can(permission):
            raise FengkongError(
                "forbidden", f"role {principal.role.value!r} may not {permission.value.replace('_', ' ')}", None, 403
            )
        return principal

    return dependency
