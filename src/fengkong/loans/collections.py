"""Collections: the queue, contact strategies per bucket, and the hard limits every contact passes through.

``check_contact`` is the one gate. ``LoanDesk.contact`` calls it for every attempt and logs the answer,
allowed or refused with its reason; nothing else writes a contact. The hard limits are constants of this module,
checked before any strategy is read, so no strategy (the default one or a lender's own) can loosen them:

- no contact at all from 22:00 to 08:00 in the customer's local time (the loan's IANA time zone, default
  Asia/Shanghai);
- at most ``MAX_CONTACTS_PER_DAY`` contacts with a customer per local day, over all channels and loans, and at
  most ``MAX_EMERGENCY_CONTACTS_PER_DAY`` with their emergency contact;
- nobody but the customer and the emergency contact they gave: any other third party (family, employer,
  colleagues, contacts in the phone book) is refused;
- no contact while the customer's collections are paused (a complaint about a collector);
- no collection contact about a loan that is not past due or no longer owed.

Expected recovery, which orders the queue = amount outstanding × the bucket's recovery rate (``RECOVERY_RATES``:
illustrative starting values, to be replaced by the lender's own cure and recovery rates by bucket).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

CHANNELS = ("sms", "app", "call")
PARTIES = ("customer", "emergency_contact", "third_party")
Channel = Literal["sms", "app", "call"]
Party = Literal["customer", "emergency_contact", "third_party"]

# ---- hard limits: constants, not settings
QUIET_FROM = dt.time(22, 0)
QUIET_UNTIL = dt.time(8, 0)
MAX_CONTACTS_PER_DAY = 3
MAX_EMERGENCY_CONTACTS_PER_DAY = 1
COLLECTABLE_STATUSES = ("active", "written_off")
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Strategy:
    """What collectors do for one bucket: the channels to the customer and whether the emergency contact may be
    reached (always subject to the hard limits)."""

    channels: tuple[str, ...]
    emergency_contact: bool = False
    note: str = ""


STRATEGIES: dict[str, Strategy] = {
    "M1": Strategy(("sms", "app"), note="reminders by SMS and in-app message"),
    "M2": Strategy(("sms", "app", "call"), note="add calls to the customer"),
    "M3": Strategy(("sms", "app", "call"), emergency_contact=True, note="calls; the emergency contact may be called"),
    "M3+": Strategy(("sms", "call"), emergency_contact=True, note="calls and the emergency contact; legal review"),
}
RECOVERY_RATES: dict[str, float] = {"M1": 0.80, "M2": 0.50, "M3": 0.30, "M3+": 0.10}

REFUSALS: dict[str, str] = {
    "third_party": "only the customer and their emergency contact may be contacted",
    "collections_paused": "contact with this customer is paused after a complaint about a collector",
    "loan_not_collectable": "the loan is not owed any more (paid off or closed)",
    "not_delinquent": "the loan is not past due",
    "quiet_hours": "no contact between 22:00 and 08:00 in the customer's local time",
    "daily_limit": f"the customer was already contacted {MAX_CONTACTS_PER_DAY} times today (their local day)",
    "emergency_contact_daily_limit": "the emergency contact was already contacted today",
    "not_in_strategy": "this channel or party is not part of the strategy for the loan's bucket",
}


@dataclass(frozen=True, slots=True)
class ContactContext:
    """What the gate needs to know about one attempt, gathered by the desk inside the logging transaction."""

    local_time: dt.datetime  # now, in the customer's time zone
    loan_status: str
    dpd: int
    bucket: str
    paused: bool
    contacts_today: int  # allowed contacts with this customer today (local day), any channel, any loan
    emergency_today: int  # allowed contacts with their emergency contact today


def in_quiet_hours(local_time: dt.datetime) -> bool:
    moment = local_time.time()
    return moment >= QUIET_FROM or moment < QUIET_UNTIL


def check_contact(
    channel: str, party: str, context: ContactContext, strategies: dict[str, Strategy] = STRATEGIES
) -> str | None:
    """None if the contact may go ahead, else the refusal reason (a key of ``REFUSALS``).

    Hard limits first, in a fixed order; the strategy is read only for an attempt that passed all of them."""
    if party not in ("customer", "emergency_contact"):
        return "third_party"
    if context.paused:
        return "collections_paused"
    if context.loan_status not in COLLECTABLE_STATUSES:
        return "loan_not_collectable"
    if context.dpd <= 0:
        return "not_delinquent"
    if in_quiet_hours(context.local_time):
        return "quiet_hours"
    if context.contacts_today >= MAX_CONTACTS_PER_DAY:
        return "daily_limit"
    if party == "emergency_contact" and context.emergency_today >= MAX_EMERGENCY_CONTACTS_PER_DAY:
        return "emergency_contact_daily_limit"
    strategy = strategies.get(context.bucket)
    if strategy is None or channel not in strategy.channels:
        return "not_in_strategy"
    if party == "emergency_contact" and not strategy.emergency_contact:
        return "not_in_strategy"
    return None


def expected_recovery(outstanding_cents: int, bucket: str) -> int:
    return round(outstanding_cents * RECOVERY_RATES.get(bucket, 0.0))
