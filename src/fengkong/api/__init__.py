"""The HTTP door: FastAPI routers that authenticate, parse and call the engine."""

from fengkong.api.app import create_app

__all__ = ["create_app"]
