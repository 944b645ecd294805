"""Errors raised while loading a policy: each names the file, the place in it and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong with a policy. ``where`` is a path into the document, e.g. ``rules[3].when``."""

    where: str
    message: str
    rule_id: str | None = None
    line: int | None = None  # 1-based line in the YAML file, where known
    column: int | None = None  # 1-based column in the YAML file (or in the expression when line is None)

    def render(self, source: str) -> str:
        loc = source
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        rule = f" rule {self.rule_id!r}" if self.rule_id else ""
        return f"{loc}:{rule} {self.where}: {self.message}"


class PolicyError(ValueError):
    """A policy that cannot be loaded. Carries every problem found, not only the first."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


class ExpressionError(ValueError):
    """A bad expression: ``position`` is the 0-based offset of the offending token in the expression text."""

    def __init__(self, message: str, position: int) -> None:
        self.message = message
        self.position = position
        super().__init__(f"{message} (at column {position + 1})")
