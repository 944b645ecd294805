"""Errors every door shows the same way: a stable code, the field at fault and what to do about it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str
    code: str = "invalid_field"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass(slots=True)
class FengkongError(Exception):
    """Base of errors a caller can act on. ``status`` is the HTTP status the API answers with."""

    code: str
    message: str
    field: str | None = None
    status: int = 400
    problems: list[FieldProblem] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.code}{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        problems = self.problems or ([FieldProblem(self.field, self.message, self.code)] if self.field else [])
        if problems:
            out["errors"] = [p.as_dict() for p in problems]
        return out


def not_found(what: str, ident: str, field_name: str | None = None) -> FengkongError:
    return FengkongError(f"{what}_not_found", f"no {what.replace('_', ' ')} with id {ident!r}", field_name, 404)


_PYDANTIC_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field (check its spelling)",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "model_type": "must be an object",
    "dict_type": "must be an object",
}


# fields that carry a person's identifiers (PII): a refusal says what is wrong, never echoes the value
_IDENTIFIER_FIELDS = frozenset({"identity", "destination_account", "device_id"})


def from_validation_error(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> FengkongError:
    """Turn pydantic's errors into ours: one problem per field, named by its dotted path in the request."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = [*prefix, *err["loc"]]
        path = ".".join(str(p) for p in loc if p not in ("function-after", "function-before"))
        kind = err["type"]
        message = _PYDANTIC_MESSAGES.get(kind) or str(err["msg"]).removeprefix("Value error, ")
        identifier = not _IDENTIFIER_FIELDS.isdisjoint(str(p) for p in loc)
        if identifier and kind == "invalid_text":  # validation.checked_text: its rule, without the value it got
            message = str((err.get("ctx") or {}).get("rule") or "is not valid")
        if not identifier and kind in (
            "greater_than_equal",
            "less_than_equal",
            "greater_than",
            "less_than",
            "string_pattern_mismatch",
            "literal_error",
            "too_short",
            "too_long",
            "string_too_short",
            "string_too_long",
        ):
            message = f"{err['msg']} (got {_short(err.get('input'))})"  # never echo identifiers back
        code = (
            "missing_field"
            if kind == "missing"
            else ("unknown_field" if kind == "extra_forbidden" else "invalid_field")
        )
        problems.append(FieldProblem(path or "body", message, code))
    first = problems[0] if problems else FieldProblem("body", "invalid request")
    summary = f"{first.field}: {first.message}"
    if len(problems) > 1:
        summary += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return FengkongError(first.code, summary, first.field, 422, problems)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
