"""Roles, permissions and API keys. One table says what each role may do; every door asks it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from fengkong.domain import Role


class Permission(StrEnum):
    DECIDE = "decide"  # post applications (and, later, drawdowns)
    INGEST = "ingest"  # post events
    MANAGE_LISTS = "manage_lists"  # blacklist / watchlist entries, victim protection
    READ_DECISION = "read_decision"  # a decision with its features and analyst explanation
    VIEW_PII = "view_pii"  # decrypted identifiers
    READ_POLICY = "read_policy"
    MANAGE_POLICY = "manage_policy"  # publish, activate
    VERIFY_AUDIT = "verify_audit"
    MANAGE_KEYS = "manage_keys"
    READ_LINE = "read_line"  # a credit line with its history
    MANAGE_LINES = "manage_lines"  # act on a line by hand; run and apply a portfolio line review
    READ_MODEL = "read_model"
    MANAGE_MODELS = "manage_models"  # train, register, monitor
    READ_LOAN = "read_loan"
    COLLECT = "collect"  # work the collections queue, log contacts
    APPEAL = "appeal"  # file an appeal or complaint on a customer's behalf (the lender's app)
    READ_CASES = "read_cases"
    WORK_CASES = "work_cases"  # claim and resolve cases
    MANAGE_USERS = "manage_users"  # console logins


_P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SYSTEM: frozenset({_P.DECIDE, _P.INGEST, _P.READ_DECISION, _P.READ_LINE, _P.READ_LOAN, _P.APPEAL}),
    Role.ANALYST: frozenset(
        {
            _P.READ_DECISION,
            _P.READ_POLICY,
            _P.MANAGE_LISTS,
            _P.READ_LINE,
            _P.MANAGE_LINES,
            _P.READ_MODEL,
            _P.READ_LOAN,
            _P.COLLECT,
            _P.READ_CASES,
            _P.WORK_CASES,
        }
    ),
    Role.SUPERVISOR: frozenset(
        {
            _P.READ_DECISION,
            _P.VIEW_PII,
            _P.READ_POLICY,
            _P.MANAGE_LISTS,
            _P.READ_LINE,
            _P.MANAGE_LINES,
            _P.READ_MODEL,
            _P.READ_LOAN,
            _P.COLLECT,
            _P.READ_CASES,
            _P.WORK_CASES,
        }
    ),
    Role.AUDITOR: frozenset(
        {_P.READ_DECISION, _P.READ_POLICY, _P.VERIFY_AUDIT, _P.READ_LINE, _P.READ_MODEL, _P.READ_LOAN, _P.READ_CASES}
    ),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key id (safe to log) and its role."""

    key_id: str
    role: Role
    name: str

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


KEY_PREFIX = "fk"


def new_api_key() -> tuple[str, str, str]:
    """A new key as (key id, full key shown once, hash to store). The id is public; the rest is secret."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = f"{KEY_PREFIX}_{key_id}_{secret}"
    return key_id, key, hash_api_key(key)


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe; no salt or KDF is needed as it would be for passwords.
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key_id(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)
