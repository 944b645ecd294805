"""Vocabulary shared by every part of fengkong: outcomes, roles and identifiers."""

from __future__ import annotations

import os
import threading
import time
from enum import StrEnum


class Outcome(StrEnum):
    """What a decision says. Ordered by severity so the strictest finding wins."""

    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def strictest(cls, *outcomes: Outcome) -> Outcome:
        return max(outcomes, key=lambda o: o.severity, default=cls.APPROVE)


_SEVERITY = {Outcome.APPROVE: 0, Outcome.REVIEW: 1, Outcome.DECLINE: 2}


class Role(StrEnum):
    """Who holds an API key. Permissions per role live in `fengkong.security`."""

    SYSTEM = "system"
    ANALYST = "analyst"
    SUPERVISOR = "supervisor"  # an analyst who may also see unmasked personal data (PII)
    AUDITOR = "auditor"
    ADMIN = "admin"


class Language(StrEnum):
    ZH = "zh"
    EN = "en"


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_id_lock = threading.Lock()
_last_id = 0


def new_id(prefix: str) -> str:
    """A time-ordered, unguessable identifier (ULID layout) with a readable prefix, e.g. ``dec_01J...``.

    Time ordering keeps B-tree inserts local; 80 random bits keep ids unguessable across tenants. Within one
    process ids also increase strictly (as ULID's monotonic mode), so records made in the same millisecond
    list in the order they were made.
    """
    global _last_id
    with _id_lock:
        value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
        if value <= _last_id:  # the same millisecond drew a smaller random part: step forward a random amount
            value = _last_id + 1 + int.from_bytes(os.urandom(5), "big")
        _last_id = value
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_CROCKFORD[rem])
    return f"{prefix}_{''.join(reversed(chars))}"
