"""Personal data handling: identifiers are stored only as keyed hashes (to link records) or encrypted
(to show an authorised person), never in plain text and never in logs.

A caller may send a raw identifier or its SHA-256 (lower-case hex of the normalised value, the form lenders
already exchange for matching); both become the same keyed hash, HMAC-SHA256 under the deployment's secret,
so a stolen database cannot be reversed by hashing every phone number in China.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

SECRET_ENV = "FENGKONG_SECRET_KEY"  # noqa: S105 - the name of a variable
SECRET_FILE_ENV = "FENGKONG_SECRET_FILE"  # noqa: S105
MIN_SECRET_BYTES = 32
RECENT_HASHES = 200_000  # keyed hashes remembered (a few hundred bytes each); then the map starts afresh


class SecretKeyError(RuntimeError):
    pass


def load_or_create_secret(default_file: Path) -> bytes:
    """The deployment secret: $FENGKONG_SECRET_KEY, else the file $FENGKONG_SECRET_FILE or ``default_file``,
    created with mode 0600 on first use so that an embedded install works with no set-up."""
    env = os.environ.get(SECRET_ENV)
    if env:
        secret = env.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise SecretKeyError(f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} characters")
        return secret
    path = Path(os.environ.get(SECRET_FILE_ENV) or default_file)
    if path.exists():
        secret = path.read_bytes().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise SecretKeyError(f"secret file {path} holds fewer than {MIN_SECRET_BYTES} bytes")
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret + b"\n")
    return secret


class PiiVault:
    """Keyed hashing and encryption of identifiers under one deployment secret (separate derived keys)."""

    def __init__(self, secret: bytes) -> None:
        self._hash_key = hmac.new(secret, b"fengkong/pii-hash/v1", hashlib.sha256).digest()
        self._recent: dict[str, str] = {}
        enc_key = hmac.new(secret, b"fengkong/pii-encrypt/v1", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(enc_key))

    def keyed_hash(self, kind: str, sha256_hex: str) -> str:
        """The stored form of an identifier, from the SHA-256 of its normalised value.

        Devices, IPs and payees recur in every event stream, so recent answers are remembered (a bounded map
        from SHA-256 to keyed hash, never the raw value; the secret itself is in the same memory)."""
        text = f"{kind}:{sha256_hex}"
        known = self._recent.get(text)
        if known is None:
            if len(self._recent) >= RECENT_HASHES:
                self._recent.clear()
            known = self._recent[text] = hmac.new(self._hash_key, text.encode(), hashlib.sha256).hexdigest()
        return known

    def encrypt(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, str]:
        data: dict[str, str] = json.loads(self._fernet.decrypt(token.encode()))
        return data


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


_NON_DIGITS = re.compile(r"[^0-9]")


def normalize(kind: str, raw: str) -> str:
    """The canonical text of an identifier before hashing, so '138 0013 8000' and '+8613800138000' match."""
    raw = raw.strip()
    if kind == "id_number":
        return raw.upper()
    if kind == "phone":
        digits = _NON_DIGITS.sub("", raw)
        return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    if kind == "bank_card":
        return _NON_DIGITS.sub("", raw)
    return raw


def mask(kind: str, raw: str) -> str:
    """A display form that identifies nothing on its own."""
    value = normalize(kind, raw)
    if len(value) <= 4:
        return "*" * len(value)
    keep = 3 if kind == "phone" else (6 if kind == "id_number" else 0)
    return value[:keep] + "*" * (len(value) - keep - 4) + value[-4:]


# ------------------------------------------------------------------------------ resident ID numbers

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")


@dataclass(frozen=True, slots=True)
class IdFacts:
    """What a raw mainland resident ID number (GB 11643-1999) says, learnt before it is hashed."""

    valid: bool
    birth_date: dt.date | None

    def age_on(self, day: dt.date) -> int | None:
        if self.birth_date is None:
            return None
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


def id_number_check_digit(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def inspect_id_number(raw: str, today: dt.date | None = None) -> IdFacts:
    value = normalize("id_number", raw)
    if not _ID_SHAPE.match(value):
        return IdFacts(False, None)
    try:
        birth = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return IdFacts(False, None)
    today = today or dt.date.today()
    if birth > today or birth.year < 1900:
        return IdFacts(False, None)
    return IdFacts(id_number_check_digit(value[:17]) == value[17], birth)
