"""Input types shared by every request schema (applications, events)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def whole_number(value: Any) -> Any:
    """JSON has one number type: accept 36.0 as 36 (as JSON Schema does), never "36" or 36.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(whole_number)]
