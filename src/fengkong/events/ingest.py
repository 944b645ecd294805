"""Turning raw event payloads into stored rows and window observations, with identifiers protected."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fengkong.errors import from_validation_error
from fengkong.events.schema import EVENT_ADAPTER, EVENT_TYPES, Event
from fengkong.features.velocity import Observation
from fengkong.pii import PiiVault, normalize, sha256_hex

# Event fields that identify a person or account: stored and counted only as keyed hashes.
PROTECTED_FIELDS = {
    "device_id": "device",
    "ip": "ip",
    "payee": "payee",
    "phone": "phone",
    "id_number": "id_number",
    "bank_card": "bank_card",
}
_PROTECTED = tuple((name, kind, f"{name}_key") for name, kind in PROTECTED_FIELDS.items())


@dataclass(slots=True)
class Rejection:
    index: int
    event_id: str | None
    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "event_id": self.event_id,
            "code": self.code,
            "field": self.field,
            "message": self.message,
        }


@dataclass(slots=True)
class IngestResult:
    accepted: list[str] = field(default_factory=list)  # new events, stored and counted
    duplicates: list[str] = field(default_factory=list)  # already stored: not counted again
    rejected: list[Rejection] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # ids of alerts the events' triggers raised

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "duplicates": len(self.duplicates),
            "rejected": len(self.rejected),
            "accepted_ids": self.accepted,
            "duplicate_ids": self.duplicates,
            "errors": [r.as_dict() for r in self.rejected],
            "alerts": self.alerts,
        }


_BATCH_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


def parse_events(items: list[Any]) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    """Validated events with their index in the batch, and the refused ones with index and reason.

    The common case, a wholly valid batch, is validated in one call; only a batch with a bad item is
    re-read item by item to say which items are bad and why."""
    try:
        parsed = _BATCH_ADAPTER.validate_python(items)
    except ValidationError:
        return _parse_one_by_one(items)
    seen: set[str] = set()
    good: list[tuple[int, Event]] = []
    for index, event in enumerate(parsed):
        if event.event_id not in seen:  # the same event twice in one batch counts once
            seen.add(event.event_id)
            good.append((index, event))
    return good, []


def _parse_one_by_one(items: list[Any]) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    good: list[tuple[int, Event]] = []
    bad: list[Rejection] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        event_id = item.get("event_id") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            bad.append(Rejection(index, None, "invalid_event", None, "an event must be a JSON object"))
            continue
        try:
            event = EVENT_ADAPTER.validate_python(item)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
                kind = item.get("type")
                message = (
                    f"unknown event type {kind!r}; known: {', '.join(EVENT_TYPES)}"
                    if kind is not None
                    else f"'type' is required: one of {', '.join(EVENT_TYPES)}"
                )
                code = "invalid_field" if kind is not None else "missing_field"
                bad.append(Rejection(index, event_id if isinstance(event_id, str) else None, code, "type", message))
                continue
            err = from_validation_error(exc)
            bad.append(
                Rejection(
                    index,
                    event_id if isinstance(event_id, str) else None,
                    err.code,
                    _strip_tag(err.field),
                    err.problems[0].message if err.problems else err.message,
                )
            )
            continue
        if event.event_id in seen:
            continue  # the same event twice in one batch counts once
        seen.add(event.event_id)
        good.append((index, event))
    return good, bad


def _strip_tag(text: str | None) -> str | None:
    """pydantic names the union member first (``payment.amount``, ``bureau_update: ...``); the caller knows
    the type, so drop it. A problem with the whole event (no field) becomes None."""
    if text is None:
        return None
    from fengkong.events.schema import EVENT_TYPES

    for kind in EVENT_TYPES:
        if text == kind:
            return None
        for sep in (".", ": "):
            if text.startswith(kind + sep):
                return text[len(kind) + len(sep) :]
    return text


def protect(event: Event, vault: PiiVault) -> tuple[dict[str, Any], dict[str, str]]:
    """The stored payload (identifiers as ``<field>_key``) and the entity keys the windows and graph use."""
    payload = event.model_dump(mode="json")
    keys = {"customer": event.customer_id}
    for name, kind, stored_as in _PROTECTED:
        raw = payload.pop(name, None)
        if raw is not None:
            keys[kind] = payload[stored_as] = vault.keyed_hash(kind, sha256_hex(normalize(kind, str(raw))))
    _add_pairs(keys, event.customer_id, payload.get("merchant_id"))
    return payload, keys


def keys_from_payload(customer_id: str, payload: dict[str, Any]) -> dict[str, str]:
    """Entity keys of a stored event (also used to rebuild the online state from the events table)."""
    keys = {"customer": customer_id}
    for _name, kind, stored_as in _PROTECTED:
        value = payload.get(stored_as)
        if value is not None:
            keys[kind] = value
    _add_pairs(keys, customer_id, payload.get("merchant_id"))
    return keys


def _add_pairs(keys: dict[str, str], customer_id: str, merchant: str | None) -> None:
    """The merchant, and the (customer, counterparty) pairs that cash-out and scam windows count."""
    if merchant is not None:
        keys["merchant"] = merchant
        keys["customer_merchant"] = f"{customer_id}|{merchant}"
    if "payee" in keys:
        keys["customer_payee"] = f"{customer_id}|{keys['payee']}"


def observation(
    event_type: str, event_id: str, occurred_at: dt.datetime, keys: dict[str, str], payload: dict[str, Any]
) -> Observation:
    amount = payload.get("amount")
    return Observation(
        event_type,
        occurred_at.timestamp(),
        event_id,
        keys,
        float(amount) if isinstance(amount, int | float) else 0.0,
        payload,
    )
