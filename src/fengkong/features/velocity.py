"""Velocity windows: exact sliding-window counts, sums and distinct counts per entity.

The windows are declared in configuration (``windows.yaml``); this module turns events into updates of an
online state (in-process or Redis, see ``fengkong.state``) and reads features back at decision time. Memory
is bounded: each series keeps only what its own window can still see.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fengkong.features.registry import Feature, FeatureRegistry, FeatureType

# The last two are pairs: one customer with one counterparty.
EntityKind = Literal[
    "customer",
    "device",
    "ip",
    "phone",
    "id_number",
    "bank_card",
    "payee",
    "merchant",
    "customer_merchant",
    "customer_payee",
]
ENTITIES: tuple[str, ...] = get_args(EntityKind)
DEFAULT_WINDOWS_FILE = Path(__file__).with_name("windows.yaml")
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 24h or 30d")
    return float(int(m.group(1)) * _UNIT[m.group(2)])


class WindowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    entity: EntityKind
    events: tuple[str, ...] = Field(min_length=1)
    agg: Literal["count", "sum", "distinct", "last", "change"]
    of: EntityKind | None = None
    window: str
    field: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$", description="numeric event field (default amount)")
    where: dict[str, str | bool | int | float] = Field(default_factory=dict)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @functools.cached_property
    def seconds(self) -> float:
        return parse_duration(self.window)

    def model_post_init(self, _context: Any) -> None:
        from fengkong.events.schema import EVENT_TYPES

        unknown = [e for e in self.events if e not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"window {self.name!r}: unknown event type(s) {unknown}")
        if (self.agg == "distinct") != (self.of is not None):
            raise ValueError(f"window {self.name!r}: 'of' is needed with agg distinct, and only then")
        if self.field is not None and self.agg not in ("sum", "last", "change"):
            raise ValueError(f"window {self.name!r}: 'field' applies to sum, last and change only")


class _WindowsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    windows: list[WindowSpec]


def load_windows(path: Path = DEFAULT_WINDOWS_FILE) -> tuple[WindowSpec, ...]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        specs = _WindowsFile.model_validate(data).windows
    except (OSError, yaml.YAMLError, ValidationError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path}: window names used twice: {dupes}")
    return tuple(specs)


def register_windows(registry: FeatureRegistry, specs: Iterable[WindowSpec]) -> None:
    for spec in specs:
        what = {
            "count": "events",
            "sum": f"total {spec.field or 'amount'}",
            "distinct": f"distinct {spec.of}s",
            "last": f"latest {spec.field or 'amount'}",
            "change": f"change in {spec.field or 'amount'} (latest - earliest)",
        }[spec.agg]
        description = f"{what} per {spec.entity} over {spec.window} ({', '.join(spec.events)})"
        registry.register(Feature(spec.name, FeatureType.NUMBER, description, "velocity"))


@dataclass(slots=True)
class Observation:
    """One event as the windows see it: its time, id, entity keys (already keyed-hashed) and fields."""

    event_type: str
    ts: float
    event_id: str
    keys: Mapping[str, str]
    amount: float = 0.0
    fields: Mapping[str, Any] = field(default_factory=dict)


class Velocity:
    """Applies observations to an online state and reads window features back."""

    def __init__(self, specs: Iterable[WindowSpec], state: Any) -> None:
        self.specs = tuple(specs)
        self.state = state
        self._by_name = {spec.name: spec for spec in self.specs}
        # per event type, the windows it feeds as plain tuples: observe runs for every event
        self._plan: dict[str, list[tuple[str, str, str, str, str | None, tuple[tuple[str, Any], ...], float]]] = {}
        for spec in self.specs:
            where = tuple(spec.where.items())
            step = (spec.name, spec.entity, spec.agg, spec.of or "", spec.field, where, spec.seconds)
            for event_type in spec.events:
                self._plan.setdefault(event_type, []).append(step)

    @property
    def horizon(self) -> float:
        """The longest window: events older than this no longer matter to any feature."""
        return max((s.seconds for s in self.specs), default=0.0)

    def observe(self, obs: Observation) -> None:
        keys, fields, ts = obs.keys, obs.fields, obs.ts
        adds: list[tuple[str, str, float, str, float, float]] = []
        for name, entity, agg, of, field_name, where, seconds in self._plan.get(obs.event_type, ()):
            key = keys.get(entity)
            if key is None or (where and any(fields.get(k) != v for k, v in where)):
                continue
            if agg == "distinct":
                item = keys.get(of)
                if item is not None:
                    adds.append((name, key, ts, item, 0.0, seconds))
            elif agg == "count":
                adds.append((name, key, ts, obs.event_id, 1.0, seconds))
            else:
                value = obs.amount if field_name is None else fields.get(field_name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    adds.append((name, key, ts, obs.event_id, float(value), seconds))
        if adds:
            self.state.add_many(adds)  # one lock (in-process) or one round trip (Redis) per event

    def features(
        self, keys: Mapping[str, str], now: float, only: Collection[str] | None = None
    ) -> dict[str, float | None]:
        """Every window feature (or those named in ``only``) for these entities as of ``now``; missing when
        the entity is unknown."""
        out: dict[str, float | None] = {}
        by_name = self._by_name
        for spec in self.specs if only is None else [by_name[n] for n in only if n in by_name]:
            key = keys.get(spec.entity)
            if key is None:
                out[spec.name] = None
                continue
            since = now - spec.seconds
            if spec.agg == "count":
                out[spec.name] = float(self.state.count(spec.name, key, since, now))
            elif spec.agg == "sum":
                out[spec.name] = float(self.state.total(spec.name, key, since, now))
            elif spec.agg == "distinct":
                out[spec.name] = float(self.state.distinct(spec.name, key, since, now))
            elif spec.agg == "last":
                out[spec.name] = self.state.last(spec.name, key, since, now)
            else:
                latest = self.state.last(spec.name, key, since, now)
                earliest = self.state.first(spec.name, key, since, now)
                out[spec.name] = None if latest is None or earliest is None else latest - earliest
        return out
