"""A seeded synthetic lending world with ground truth, for demos, tests and benchmarks.

Customers apply for a consumer credit line and then live: they log in, bind new phones, pay merchants, draw
down, transfer money and repay, and the credit bureau reports on them. Most are honest; some belong to a fraud
typology, and the world records which (the *truth*), so that detection can be measured:

``honest``
    Ordinary customers, with the noise that must not look like fraud: families of 2–3 sharing one phone
    number (and sometimes one handset), offices where dozens apply from one public IP, people who change
    phones now and then (a new device, sometimes a password reset, no sudden loan), occasional late payments,
    merchant refunds, students and low incomes that the policy declines for ordinary reasons.
``ring``
    Fraud rings of 4–12 customers sharing a few devices and phones, applying within hours through one or two
    proxy IPs, with thin or fabricated profiles (no bureau file, short employment, round high incomes), most
    naming the same emergency contact; those approved draw down and move the money to a mule account.
``multi_head``
    多头借贷: bureau inquiries rising fast across successive ``bureau_update`` events and at the application,
    with debt and active loans climbing, later some late payments.
``cash_out``
    套现: a round-amount payment near the line's limit to a colluding merchant with few distinct payers,
    followed within a day by a ``merchant_payout`` from that merchant back to the payer or to a linked account
    (a partner sharing the payer's device); repeated after the bill is paid.
``takeover``
    Account takeover of a genuine customer: often failed logins from a new IP, then a new ``device_bound``,
    ``password_changed`` and a drawdown and/or ``transfer_out`` to a mule within minutes; the real customer
    complains later.
``scam_victim``
    A genuine customer induced by a scammer to draw down and transfer most of it (≥ 75 %) to a payee they
    never paid before, from their own device and IP, shortly after. To be protected, not treated as a fraudster.

Everything is a function of :class:`WorldConfig`: the same config gives byte-identical files; time runs over
``days`` ending at the fixed ``end`` of the config, never the wall clock. Identifiers are raw and realistic
(valid GB 11643 ID numbers, Luhn-valid bank cards, phones written in several formats) but invented.

The application event itself is not in ``events``: the decision path records it when an application is
decided. Replay a world by merging ``applications`` (at ``application_times``) with ``events`` in time order.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import gc
import itertools
import json
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fengkong.applications import Identity
from fengkong.pii import id_number_check_digit

TYPOLOGIES: tuple[str, ...] = ("honest", "ring", "multi_head", "cash_out", "takeover", "scam_victim")
FRAUD_TYPOLOGIES: tuple[str, ...] = TYPOLOGIES[1:]

MINUTE = 60
HOUR = 3_600
DAY = 86_400

#: The application schema has no emergency-contact field yet; the world fills it in once it has one.
CONTACT_FIELD = "emergency_contact"
_CONTACT_IN_APPLICATION = CONTACT_FIELD in Identity.model_fields

Progress = Callable[[int, int], None]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """What to generate. Proportions are shares of ``customers``; honest customers are the rest."""

    customers: int = 10_000
    seed: int = 0
    ring: float = 0.03
    multi_head: float = 0.03
    cash_out: float = 0.015
    takeover: float = 0.015
    scam_victim: float = 0.01
    days: int = 60
    #: The end of the simulated period (exclusive), ISO 8601 with a time zone: fixed, so outputs reproduce.
    end: str = "2026-11-30T00:00:00+08:00"
    #: Honest noise: shares of honest customers in a family sharing one phone number, in an office sharing one
    #: IP, who change phones during the period; and the share of honest instalments paid late.
    family_rate: float = 0.08
    office_rate: float = 0.25
    phone_change_rate: float = 0.05
    late_payment_rate: float = 0.05

    def __post_init__(self) -> None:
        if not 1 <= self.customers <= 10_000_000:
            raise ValueError("customers must be between 1 and 10,000,000")
        if self.seed < 0:
            raise ValueError("seed must be a non-negative integer")
        if not 7 <= self.days <= 3_650:
            raise ValueError("days must be between 7 and 3650")
        for name in (*FRAUD_TYPOLOGIES, "family_rate", "office_rate", "phone_change_rate", "late_payment_rate"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a share between 0 and 1, got {value!r}")
        if sum(getattr(self, t) for t in FRAUD_TYPOLOGIES) > 1.0 + 1e-9:
            raise ValueError("the typology proportions add up to more than 1")
        self.end_time()  # parse now: a bad end is a config error, not a late surprise

    @property
    def honest(self) -> float:
        shares: list[float] = [getattr(self, t) for t in FRAUD_TYPOLOGIES]
        return max(0.0, 1.0 - sum(shares))

    def end_time(self) -> dt.datetime:
        try:
            end = dt.datetime.fromisoformat(self.end)
        except ValueError:
            raise ValueError(f"end must be an ISO 8601 date-time, got {self.end!r}") from None
        if end.tzinfo is None or end.utcoffset() is None:
            raise ValueError("end must carry a time zone, e.g. 2026-11-30T00:00:00+08:00")
        return end

    def counts(self) -> dict[str, int]:
        """Customers per typology: each share rounded half up, honest customers the remainder."""
        counts = {t: int(getattr(self, t) * self.customers + 0.5) for t in FRAUD_TYPOLOGIES}
        excess = sum(counts.values()) - self.customers
        while excess > 0:  # rounding up several shares that add up to 1 can overshoot by a customer or two
            largest = max(FRAUD_TYPOLOGIES, key=lambda t: counts[t])
            counts[largest] -= 1
            excess -= 1
        return {"honest": self.customers - sum(counts.values()), **counts}


@dataclass(slots=True)
class World:
    """A generated world. ``applications[i]`` was submitted at ``application_times[i]`` (both in time order);
    ``emergency_contacts[i]`` is the emergency contact phone its applicant named."""

    config: WorldConfig
    applications: list[dict[str, Any]]
    application_times: list[str]
    events: list[dict[str, Any]]
    truth: list[tuple[str, str]]
    emergency_contacts: list[str] = field(default_factory=list)

    def typology_counts(self) -> dict[str, int]:
        counted = Counter(t for _, t in self.truth)
        return {t: counted.get(t, 0) for t in TYPOLOGIES}

    def event_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e["type"] for e in self.events).items()))

    def write(self, out_dir: Path, on_progress: Progress | None = None) -> dict[str, Path]:
        """Write ``applications.jsonl``, ``events.jsonl``, ``truth.csv`` (customer_id,typology),
        ``application_times.csv`` (application_id,customer_id,occurred_at) and ``world.json`` (the config and
        counts). Returns the paths by name."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "applications": out_dir / "applications.jsonl",
            "events": out_dir / "events.jsonl",
            "truth": out_dir / "truth.csv",
            "application_times": out_dir / "application_times.csv",
            "manifest": out_dir / "world.json",
        }
        total = len(self.applications) + len(self.events)
        done = 0
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        chunk = 20_000
        for name, rows in (("applications", self.applications), ("events", self.events)):
            with paths[name].open("w", encoding="utf-8", newline="\n") as fh:
                for start in range(0, len(rows), chunk):
                    part = rows[start : start + chunk]
                    fh.write("".join(dumps(r) + "\n" for r in part))
                    done += len(part)
                    if on_progress is not None:
                        on_progress(done, total)
        with paths["truth"].open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(("customer_id", "typology"))
            writer.writerows(self.truth)
        with paths["application_times"].open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(("application_id", "customer_id", "occurred_at"))
            writer.writerows(
                (a["application_id"], a["customer_id"], t)
                for a, t in zip(self.applications, self.application_times, strict=True)
            )
        manifest = {
            "config": asdict(self.config),
            "customers": self.typology_counts(),
            "applications": len(self.applications),
            "events": self.event_counts(),
        }
        paths["manifest"].write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if on_progress is not None:
            on_progress(total, total)
        return paths


def generate(config: WorldConfig | None = None, on_progress: Progress | None = None) -> World:
    """Generate the world a config describes; ``on_progress(customers_done, customers)`` is called as it goes."""
    was_enabled = gc.isenabled()
    gc.disable()  # millions of new long-lived objects and no reference cycles: the cyclic collector only slows it
    try:
        return _Builder(config or WorldConfig(), on_progress).build()
    finally:
        if was_enabled:
            gc.enable()


# ------------------------------------------------------------------------------------------ building blocks

# Local hour-of-day weights: people act by day and in the evening; offices 9 to 18; rings and takeovers any time.
_HONEST_HOURS = (1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 3, 5, 6, 7, 7, 7, 6, 6, 6, 6, 6, 6, 7, 8, 8, 6, 3)
_OFFICE_HOURS = (0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 8, 8, 5, 6, 8, 8, 7, 5, 2, 0, 0, 0, 0, 0)
_NIGHT_HOURS = (6, 6, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5)
_HOURS = tuple(range(24))


def _cum(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


_HONEST_CUM = _cum(_HONEST_HOURS)
_OFFICE_CUM = _cum(_OFFICE_HOURS)
_NIGHT_CUM = _cum(_NIGHT_HOURS)

# Administrative division codes (the first six digits of a resident ID number).
_REGIONS = (
    "110101", "110105", "110108", "120101", "130102", "140105", "210102", "220102", "310104", "310115",
    "320102", "320506", "330106", "330212", "340104", "350203", "360102", "370102", "370202", "410105",
    "420106", "430104", "440104", "440305", "440606", "450103", "500103", "510107", "520102", "530102",
    "610113", "620102",
)  # fmt: skip
_PHONE_PREFIXES = (
    "130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "158", "159", "166", "176",
    "177", "180", "181", "185", "186", "187", "188", "189", "191", "199",
)  # fmt: skip
_CARD_BINS = ("622202", "621700", "622848", "623058", "621226", "622588", "628288", "625965", "621483", "622700")
_IP_FIRST = (
    36, 39, 42, 58, 59, 60, 61, 101, 106, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124,
    125, 171, 175, 180, 182, 183, 202, 210, 211, 218, 219, 220, 221, 222, 223,
)  # fmt: skip
_PROXY_FIRST = (45, 47, 103, 104, 107, 139, 149, 154, 156, 172, 185, 193)  # hosting and VPN ranges

_EMPLOYMENT = ("salaried", "self_employed", "business_owner", "freelance", "retired", "student", "unemployed")
_EMPLOYMENT_WEIGHTS = _cum((62, 11, 5, 10, 6, 4, 2))
_INQUIRY_CUM = _cum((22, 24, 18, 12, 9, 6, 4, 3, 2))  # honest bureau inquiries in 90 days: 0..8
_LOANS_CUM = _cum((25, 30, 20, 12, 7, 4, 2))  # honest active loans: 0..6
_DPD_CUM = _cum((85, 11, 4))  # worst delinquency: none, under 30 days, 30-89 days
_PAYMENTS_CUM = _cum((20, 20, 18, 14, 12, 9, 7))  # merchant payments in the period: 0..6
_CONSUMER_MERCHANT_AMOUNTS = (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0)


def _luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


@dataclass(slots=True)
class _Person:
    typology: str
    number: int
    customer_id: str
    id_number: str
    phone: str  # canonical 11 digits
    phone_text: str  # as written in the application
    card_text: str
    device: str | None  # the device at application (None: applied on the web)
    app_ip: str
    home_ip: str
    office_ip: str | None
    income: int
    employment: str
    employment_months: int | None
    bureau: dict[str, int] | None
    requested: int
    contact: str
    contact_text: str = ""  # the contact phone as written in the application
    app_ts: int = 0
    language: str = "zh"
    payees: list[str] = field(default_factory=list)
    loans: int = 0

    @property
    def line_id(self) -> str:
        return self.customer_id.replace("-c", "-l", 1)


_Raw = tuple[int, dict[str, Any]]  # (timestamp, the event with event_id and occurred_at still to fill in)


class _Builder:
    def __init__(self, config: WorldConfig, on_progress: Progress | None) -> None:
        self.c = config
        self.on_progress = on_progress
        self.rng = random.Random(config.seed)  # noqa: S311 - a simulation, not cryptography
        self.prefix = f"s{config.seed}-"
        end = config.end_time()
        self.tz = end.tzinfo
        self.offset = int(end.utcoffset().total_seconds())  # type: ignore[union-attr]
        self.end_ts = int(end.timestamp())
        self.start_ts = self.end_ts - config.days * DAY
        self.ref_date = end.date()
        numbers = list(range(1, config.customers + 1))
        self.rng.shuffle(numbers)  # customer numbers carry no hint of typology or of time
        self._numbers = iter(numbers)
        self.width = max(7, len(str(config.customers)))
        self.people: list[_Person] = []
        self.raw: list[_Raw] = []
        self._seen: set[str] = set()  # issued identifiers (membership only: never iterated)
        n_merchants = max(50, config.customers // 20)
        self.merchants = [self.merchant() for _ in range(n_merchants)]
        self.merchant_cum = _cum([1.0 / (i + 1) ** 1.1 for i in range(n_merchants)])  # a few big, a long tail
        self.attacker_devices: list[str] = []
        self.scam_payees: list[str] = []
        self._done = 0

    # ---------------------------------------------------------------------------------------- draws

    def ri(self, a: int, b: int) -> int:
        """An integer in [a, b], like ``randint`` but several times cheaper (ranges here are far below 2**53)."""
        return a + int(self.rng.random() * (b - a + 1))

    def pick(self, items: Sequence[_T], cum: Sequence[float]) -> _T:
        """One of ``items`` by cumulative weights, like ``choices(...)[0]`` but cheaper."""
        return items[bisect.bisect(cum, self.rng.random() * cum[-1])]

    # ---------------------------------------------------------------------------------------- identifiers

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self._seen:
                self._seen.add(value)
                return value

    def id_number(self, age: int) -> str:
        rng = self.rng

        def make() -> str:
            born = self.ref_date - dt.timedelta(days=365 * age + rng.randrange(365))
            first17 = f"{rng.choice(_REGIONS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
            return first17 + id_number_check_digit(first17)

        return self._unique(make)

    def phone(self) -> str:
        rng = self.rng
        return self._unique(lambda: f"{rng.choice(_PHONE_PREFIXES)}{rng.randrange(100_000_000):08d}")

    def phone_text(self, canonical: str) -> str:
        style = self.rng.random()
        if style < 0.5:
            return canonical
        if style < 0.75:
            return f"+86 {canonical[:3]} {canonical[3:7]} {canonical[7:]}"
        if style < 0.9:
            return f"{canonical[:3]}-{canonical[3:7]}-{canonical[7:]}"
        return f"+86{canonical}"

    def card_text(self) -> str:
        rng = self.rng

        def make() -> str:
            length = 19 if rng.random() < 0.7 else 16
            body = f"{rng.choice(_CARD_BINS)}{rng.randrange(10 ** (length - 7)):0{length - 7}d}"
            return _luhn_complete(body)

        card = self._unique(make)
        if rng.random() < 0.5:
            return " ".join(card[i : i + 4] for i in range(0, len(card), 4))
        return card

    def device(self) -> str:
        rng = self.rng
        if rng.random() < 0.8:
            return self._unique(lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        return self._unique(lambda: f"{rng.getrandbits(64):016x}")  # an Android ID

    def ip(self, first: Sequence[int] = _IP_FIRST) -> str:
        rng = self.rng
        return self._unique(
            lambda: f"{rng.choice(first)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )

    def account(self) -> str:
        """A bank account that receives transfers."""
        rng = self.rng
        return self._unique(lambda: f"62{rng.randrange(10**17):017d}")

    def merchant(self) -> str:
        rng = self.rng
        return self._unique(lambda: f"mch-{rng.randrange(10**8):08d}")

    # ---------------------------------------------------------------------------------------- time

    def when(self, lo: int, hi: int, hours: list[float] = _HONEST_CUM) -> int:
        """A moment in [lo, hi) at a plausible local hour (uniform when the interval is short)."""
        rng = self.rng
        if hi <= lo:
            return lo
        t = lo + int(rng.random() * (hi - lo))
        if hi - lo < DAY:
            return t
        day0 = (t + self.offset) // DAY * DAY - self.offset
        t = day0 + self.pick(_HOURS, hours) * HOUR + int(rng.random() * HOUR)
        return t if lo <= t < hi else lo + int(rng.random() * (hi - lo))

    # ---------------------------------------------------------------------------------------- events

    def ev(self, ts: int, kind: str, person: _Person | str, **fields: Any) -> None:
        if not self.start_ts <= ts < self.end_ts:
            return  # outside the simulated period
        event: dict[str, Any] = {
            "event_id": "",
            "type": kind,
            "customer_id": person if isinstance(person, str) else person.customer_id,
            "occurred_at": "",
        }
        for k, v in fields.items():
            if v is not None:
                event[k] = v
        self.raw.append((ts, event))

    def login(self, ts: int, p: _Person, device: str | None, ip: str, success: bool = True) -> None:
        self.ev(ts, "login", p, device_id=device, ip=ip, success=success)

    # ---------------------------------------------------------------------------------------- people

    def person(
        self,
        typology: str,
        *,
        age: int | None = None,
        employment: str | None = None,
        phone: str | None = None,
        device: str | None = None,
        home_ip: str | None = None,
    ) -> _Person:
        rng = self.rng
        number = next(self._numbers)
        if employment is None:
            employment = self.pick(_EMPLOYMENT, _EMPLOYMENT_WEIGHTS)
        if age is None:
            age = {"retired": self.ri(55, 64), "student": self.ri(19, 23)}.get(employment, self.ri(22, 55))
        income = self.income(employment)
        months = None if rng.random() < 0.1 or employment in ("student", "unemployed") else self.tenure(employment)
        if employment == "unemployed":
            months = 0 if rng.random() < 0.5 else None
        canonical = phone or self.phone()
        p = _Person(
            typology=typology,
            number=number,
            customer_id=f"{self.prefix}c{number:0{self.width}d}",
            id_number=self.id_number(age),
            phone=canonical,
            phone_text=self.phone_text(canonical),
            card_text=self.card_text(),
            device=device if device is not None else (None if rng.random() < 0.01 else self.device()),
            app_ip="",
            home_ip=home_ip or self.ip(),
            office_ip=None,
            income=income,
            employment=employment,
            employment_months=months,
            bureau=self.bureau(),
            requested=self.requested(income),
            contact=self.phone(),
            language="en" if rng.random() < 0.08 else "zh",
        )
        p.app_ip = p.home_ip
        self.people.append(p)
        self._done += 1
        if self.on_progress is not None and self._done % 2_000 == 0:
            self.on_progress(self._done, self.c.customers)
        return p

    def income(self, employment: str) -> int:
        median = {"student": 1500, "unemployed": 1200, "retired": 4500, "freelance": 7000}.get(employment, 8500)
        value = self.rng.lognormvariate(math.log(median), 0.55)
        return max(500, int(round(value, -2)))

    def tenure(self, employment: str) -> int:
        if employment == "retired":
            return self.ri(0, 6)
        return min(480, int(self.rng.expovariate(1 / 40)) + 1)

    def requested(self, income: int) -> int:
        return max(1000, min(200_000, int(round(income * self.rng.uniform(0.5, 4.0), -3))))

    def bureau(self) -> dict[str, int] | None:
        rng = self.rng
        if rng.random() < 0.07:
            return None  # no credit file yet
        i90 = self.pick(range(9), _INQUIRY_CUM)
        i30 = self.ri(0, i90) if rng.random() < 0.7 else i90 // 2
        i7 = self.ri(0, min(i30, 2)) if rng.random() < 0.3 else 0
        loans = self.pick(range(7), _LOANS_CUM)
        debt = sum(int(round(rng.uniform(2_000, 40_000), -2)) for _ in range(loans))
        worst = self.pick((0, 1, 2), _DPD_CUM)
        dpd = (0, self.ri(1, 29), self.ri(30, 89))[worst] if rng.random() > 0.01 else self.ri(90, 180)
        return {
            "inquiries_7d": i7,
            "inquiries_30d": i30,
            "inquiries_90d": i90,
            "active_loans": loans,
            "total_debt": debt,
            "worst_delinquency_days": dpd,
        }

    def register(self, p: _Person, bound_before: tuple[int, int] = (10 * MINUTE, 3 * DAY)) -> None:
        """The app install (device bound) some time before applying, and the login just before."""
        if p.device is not None:
            reg = p.app_ts - self.ri(*bound_before)
            self.ev(reg, "device_bound", p, device_id=p.device, ip=p.home_ip)
            self.login(p.app_ts - self.ri(30, 8 * MINUTE), p, p.device, p.app_ip)

    # ---------------------------------------------------------------------------------------- ordinary life

    def life(
        self,
        p: _Person,
        *,
        phone_change: bool = False,
        late_rate: float | None = None,
        quiet: tuple[int, int] | None = None,
        new_payee_noise: bool = False,
    ) -> None:
        """An ordinary customer's activity after the application: logins, payments, loans and repayments,
        transfers to the usual payees, the odd bureau update. Nothing that moves money happens in ``quiet``."""
        rng = self.rng
        lo, hi = p.app_ts + 10 * MINUTE, self.end_ts
        if hi - lo < HOUR:
            return
        span = (hi - lo) / DAY
        device = p.device
        if device is None:  # applied on the web, installs the app later
            device = self.device()
            self.ev(self.when(lo, hi), "device_bound", p, device_id=device, ip=p.home_ip)
        avoid: list[tuple[int, int]] = [quiet] if quiet is not None else []
        change_ts: int | None = None
        new_device: str | None = None
        if phone_change and hi - lo > 3 * DAY:
            change_ts = self.when(lo + 2 * DAY, hi)
            new_device = self.device()
            self.login(change_ts - self.ri(60, 600), p, new_device, p.home_ip, success=rng.random() < 0.7)
            self.ev(change_ts, "device_bound", p, device_id=new_device, ip=p.home_ip)
            self.login(change_ts + self.ri(5, 60), p, new_device, p.home_ip)
            if rng.random() < 0.3:  # forgot the password on the new phone
                self.ev(change_ts + self.ri(60, 15 * MINUTE), "password_changed", p, device_id=new_device, ip=p.home_ip)
            avoid.append((change_ts - HOUR, change_ts + 36 * HOUR))

        def dev_at(ts: int) -> str:
            return new_device if change_ts is not None and new_device is not None and ts >= change_ts else device

        def ip_at() -> str:
            r = rng.random()
            if p.office_ip is not None and r < 0.4:
                return p.office_ip
            return p.home_ip if r < 0.85 else self.ip()  # mobile data

        def money_time(lo_: int, hi_: int) -> int:
            t = self.when(lo_, hi_)
            for a, b in avoid:
                if a <= t < b:
                    t = b + self.ri(HOUR, DAY)
            return t

        for _ in range(max(1, int(span / rng.uniform(3, 9)))):
            t = self.when(lo, hi)
            ip = ip_at()
            if rng.random() < 0.05:  # a mistyped password
                self.login(t - self.ri(10, 90), p, dev_at(t), ip, success=False)
            self.login(t, p, dev_at(t), ip)

        for _ in range(self.pick(range(7), _PAYMENTS_CUM)):
            t = self.when(lo, hi)
            merchant = self.pick(self.merchants, self.merchant_cum)
            if rng.random() < 0.08:
                amount = rng.choice(_CONSUMER_MERCHANT_AMOUNTS)
            else:
                amount = round(min(20_000.0, rng.lognormvariate(math.log(120), 1.0)) + 0.01, 2)
            self.ev(t, "payment", p, device_id=dev_at(t), ip=ip_at(), merchant_id=merchant, amount=amount)
            if rng.random() < 0.02:  # a refund
                self.ev(t + self.ri(2 * HOUR, 3 * DAY), "merchant_payout", p, merchant_id=merchant, amount=amount)

        late = self.c.late_payment_rate if late_rate is None else late_rate
        if rng.random() < 0.5:
            for _ in range(1 if rng.random() < 0.8 else 2):
                t = money_time(lo, hi)
                principal = max(500, int(round(p.requested * rng.uniform(0.1, 0.8), -2)))
                self.drawdown(t, p, dev_at(t), ip_at(), principal, late)
                if new_payee_noise and rng.random() < 0.5:  # pays a contractor from the loan, days later
                    t2 = t + self.ri(DAY + HOUR, 3 * DAY)
                    self.ev(
                        t2,
                        "transfer_out",
                        p,
                        device_id=dev_at(t2),
                        ip=ip_at(),
                        payee=self.account(),
                        amount=float(int(principal * rng.uniform(0.7, 0.9))),
                    )
                    new_payee_noise = False

        if not p.payees and rng.random() < 0.5:
            p.payees = [self.account() for _ in range(self.ri(1, 3))]
        for _ in range(self.ri(0, 3) if p.payees else 0):
            t = money_time(lo, hi)
            amount = float(rng.choice((200, 300, 500, 800, 1000, 1500, 2000, 3000, 5000)))
            self.ev(t, "transfer_out", p, device_id=dev_at(t), ip=ip_at(), payee=rng.choice(p.payees), amount=amount)

        if p.bureau is not None and rng.random() < 0.25:
            b = p.bureau
            extra = self.ri(0, 1)
            self.ev(
                self.when(lo, hi),
                "bureau_update",
                p,
                inquiries_7d=b["inquiries_7d"],
                inquiries_30d=b["inquiries_30d"] + extra,
                inquiries_90d=b["inquiries_90d"] + extra,
                active_loans=b["active_loans"],
                total_debt=float(b["total_debt"]),
            )

    def drawdown(self, t: int, p: _Person, device: str | None, ip: str, principal: int, late_rate: float) -> None:
        rng = self.rng
        p.loans += 1
        loan_id = f"{p.customer_id.replace('-c', '-n', 1)}-{p.loans}"
        self.ev(t, "drawdown", p, device_id=device, ip=ip, amount=float(principal), line_id=p.line_id)
        term = rng.choice((3, 6, 12))
        instalment = round(principal / term + principal * 0.015, 2)
        for k in range(1, term + 1):
            due = t + 30 * k * DAY
            if due - 3 * DAY >= self.end_ts:
                break
            paid = due + self.ri(3 * DAY, 25 * DAY) if rng.random() < late_rate else due - self.ri(0, 3 * DAY)
            self.ev(paid, "repayment", p, device_id=device, ip=ip, amount=instalment, loan_id=loan_id)

    # ---------------------------------------------------------------------------------------- typologies

    def honest(self, n: int) -> None:
        rng = self.rng
        c = self.c
        lo, hi = self.start_ts + HOUR, self.end_ts - DAY
        people: list[_Person] = []
        n_family = int(n * c.family_rate)
        n_office = min(n - n_family, int(n * c.office_rate))
        # families: 2-3 people, one phone number (each writes it their own way), one home, sometimes one handset
        made = 0
        while made < n_family:
            size = min(n_family - made, 2 if rng.random() < 0.65 else 3)
            phone, home = self.phone(), self.ip()
            handset = self.device() if size == 2 and rng.random() < 0.5 else None
            for _ in range(size):
                people.append(self.person("honest", phone=phone, home_ip=home, device=handset))
            made += size
        # offices: dozens of colleagues behind one public IP, applying in office hours
        made = 0
        while made < n_office:
            size = min(n_office - made, self.ri(20, 60))
            office_ip = self.ip()
            for _ in range(size):
                p = self.person("honest", employment="salaried" if rng.random() < 0.9 else None)
                p.office_ip = office_ip
                people.append(p)
            made += size
        while len(people) < n:
            people.append(self.person("honest"))
        for p in people:
            if p.office_ip is not None and rng.random() < 0.8:
                p.app_ip = p.office_ip
                p.app_ts = self.when(lo, hi, _OFFICE_CUM)
            else:
                p.app_ts = self.when(lo, hi)
            self.register(p)
            self.life(
                p,
                phone_change=rng.random() < c.phone_change_rate,
                new_payee_noise=rng.random() < 0.01,
            )

    def rings(self, n: int) -> None:
        sizes: list[int] = []
        left = n
        while left > 0:
            size = left if left <= 12 else self.ri(4, min(12, left - 4))
            sizes.append(size)
            left -= size
        for size in sizes:
            self.ring(size)

    def ring(self, size: int) -> None:
        rng = self.rng
        t0 = self.when(
            self.start_ts + 2 * HOUR, self.end_ts - 3 * DAY, _NIGHT_CUM if rng.random() < 0.4 else _HONEST_CUM
        )
        devices = [self.device() for _ in range(self.ri(1, max(1, min(3, size // 3))))]
        phones = [self.phone() for _ in range(self.ri(1, max(1, size // 3)))]
        ips = [self.ip(_PROXY_FIRST) for _ in range(self.ri(1, 2))]
        contact = self.phone()
        mule = self.account()
        card_shared = self.card_text() if rng.random() < 0.3 else None
        shared_card_users = self.ri(2, 3)
        order = list(range(size))
        rng.shuffle(order)
        members: list[_Person] = []
        for i in range(size):
            employment = rng.choice(("salaried", "salaried", "self_employed", "self_employed", "freelance"))
            p = self.person(
                "ring",
                age=self.ri(20, 45),
                employment=employment,
                phone=phones[order[i] % len(phones)],
                device=devices[i % len(devices)],
            )
            p.app_ip = p.home_ip = ips[i % len(ips)]
            p.income = rng.choice((8000, 10000, 12000, 15000, 18000, 20000, 25000, 30000))  # declared, unverifiable
            p.employment_months = None if rng.random() < 0.4 else self.ri(0, 11)
            p.bureau = None if rng.random() < 0.5 else {
                "inquiries_7d": 0, "inquiries_30d": 0, "inquiries_90d": self.ri(0, 1), "active_loans": 0,
                "total_debt": 0, "worst_delinquency_days": 0,
            }  # fmt: skip
            p.requested = min(p.income * 5, rng.choice((20000, 30000, 50000)))
            p.contact = contact if i < 2 or rng.random() < 0.75 else self.phone()
            p.language = "zh"
            if card_shared is not None and i < shared_card_users:
                p.card_text = card_shared
            p.app_ts = t0 + self.ri(0, 6 * HOUR)
            members.append(p)
        for p in members:
            self.register(p, bound_before=(2 * MINUTE, 40 * MINUTE))
            if rng.random() < 0.7:  # bust-out: take the money and move it to the ring's mule account
                t = p.app_ts + self.ri(10 * MINUTE, 2 * DAY)
                amount = int(round(p.requested * rng.uniform(0.5, 1.0), -2))
                self.login(t - self.ri(20, 120), p, p.device, p.app_ip)
                self.ev(t, "drawdown", p, device_id=p.device, ip=p.app_ip, amount=float(amount), line_id=p.line_id)
                self.ev(
                    t + self.ri(2 * MINUTE, HOUR),
                    "transfer_out",
                    p,
                    device_id=p.device,
                    ip=p.app_ip,
                    payee=mule,
                    amount=float(int(amount * rng.uniform(0.9, 1.0))),
                )

    def multi_heads(self, n: int) -> None:
        rng = self.rng
        lead = min(30 * DAY, self.c.days * DAY // 2)
        for _ in range(n):
            p = self.person("multi_head", employment=rng.choice(("salaried", "salaried", "self_employed", "freelance")))
            p.income = min(p.income, int(round(rng.uniform(3500, 12000), -2)))
            p.app_ts = self.when(self.start_ts + lead, self.end_ts - 3 * DAY)
            severe = rng.random() < 0.6
            f90 = self.ri(20, 50) if severe else self.ri(10, 20)
            f30 = min(f90, self.ri(12, 30) if severe else self.ri(6, 11))
            f7 = min(f30, self.ri(6, 15) if severe else self.ri(3, 5))
            loans = self.ri(4, 12) if severe else self.ri(3, 7)
            debt = int(round(p.income * 12 * rng.uniform(0.6, 3.0), -2))
            dpd = 0 if rng.random() < 0.7 else self.ri(1, 29)
            p.bureau = {
                "inquiries_7d": f7,
                "inquiries_30d": f30,
                "inquiries_90d": f90,
                "active_loans": loans,
                "total_debt": debt,
                "worst_delinquency_days": dpd,
            }
            p.requested = max(1000, int(round(p.income * rng.uniform(1.0, 4.0), -3)))
            self.register(p)
            # successive bureau reports before the application, inquiries climbing towards today's figures
            m = self.ri(2, 4)
            times = sorted(p.app_ts - self.ri(HOUR, lead) for _ in range(m))
            prev = -1
            for j, t in enumerate(times):
                share = (j + 1) / (m + 1)
                i90 = max(prev + 1, int(f90 * share**1.2))
                i90 = min(i90, f90)
                i30 = min(i90, int(f30 * share**1.5))
                i7 = min(i30, int(f7 * share**2))
                prev = i90
                self.ev(
                    t,
                    "bureau_update",
                    p,
                    inquiries_7d=i7,
                    inquiries_30d=i30,
                    inquiries_90d=i90,
                    active_loans=max(0, int(loans * share)),
                    total_debt=float(int(debt * share)),
                )
            # and still climbing after it
            t = p.app_ts
            i7, i30, i90, ln, db = f7, f30, f90, loans, debt
            for _ in range(self.ri(0, 2)):
                t += self.ri(3 * DAY, 12 * DAY)
                step = self.ri(2, 6)
                i7, i30, i90 = i7 + step // 2, i30 + step, i90 + step
                ln, db = ln + 1, int(db * 1.15)
                self.ev(
                    t,
                    "bureau_update",
                    p,
                    inquiries_7d=i7,
                    inquiries_30d=i30,
                    inquiries_90d=i90,
                    active_loans=ln,
                    total_debt=float(db),
                )
            self.life(p, late_rate=0.35)

    def cash_outs(self, n: int) -> None:
        made = 0
        while made < n:
            size = min(n - made, self.pick((1, 2, 3), (40, 80, 100)))
            self.cash_out_group(size)
            made += size

    def cash_out_group(self, size: int) -> None:
        """A colluding merchant and 1-3 customers; partners share the broker's handset (the linked account)."""
        rng = self.rng
        merchant = self.merchant()
        broker = self.device() if size > 1 else None
        span = self.end_ts - self.start_ts
        members = [self.person("cash_out", device=broker) for _ in range(size)]
        for p in members:
            p.requested = int(rng.choice((10, 15, 20, 30, 50)) * 1000)
            p.income = max(p.income, p.requested // 4)
            if p.employment in ("student", "unemployed"):
                p.employment, p.employment_months = "self_employed", self.ri(6, 60)
            p.app_ts = self.when(self.start_ts + HOUR, self.end_ts - min(12 * DAY, span // 2))
            self.register(p)
            self.life(p, quiet=(p.app_ts, self.end_ts))  # logins and small purchases; its loans are below
            t = p.app_ts + self.ri(HOUR, max(HOUR + 1, min(5 * DAY, self.end_ts - DAY - p.app_ts)))
            for _ in range(self.ri(1, 3)):
                limit = p.requested
                amount = float(limit if rng.random() < 0.3 else int(limit * rng.uniform(0.9, 0.99)) // 100 * 100)
                ip = p.home_ip
                self.login(t - self.ri(30, 300), p, p.device, ip)
                self.ev(t, "payment", p, device_id=p.device, ip=ip, merchant_id=merchant, amount=amount)
                back_to = p if size == 1 or rng.random() < 0.8 else rng.choice([m for m in members if m is not p])
                fee = rng.uniform(0.005, 0.03)
                self.ev(
                    t + self.ri(5 * MINUTE, 20 * HOUR),
                    "merchant_payout",
                    back_to,
                    merchant_id=merchant,
                    amount=round(amount * (1 - fee), 2),
                )
                if rng.random() < 0.3:
                    break  # never repays: a bad debt
                paid = t + self.ri(15 * DAY, 28 * DAY)
                self.ev(paid, "repayment", p, device_id=p.device, ip=ip, amount=amount, loan_id=None)
                t = paid + self.ri(12 * HOUR, 3 * DAY)

    def takeovers(self, n: int) -> None:
        rng = self.rng
        for _ in range(n):
            p = self.person("takeover", device=self.device())
            if p.employment in ("student", "unemployed"):
                p.employment = "salaried"
            hi = self.end_ts - max(3 * DAY, (self.end_ts - self.start_ts) // 3)
            p.app_ts = self.when(self.start_ts + HOUR, hi)
            lo_t = p.app_ts + 2 * DAY
            takeover = (
                self.when(lo_t, self.end_ts - 2 * HOUR, _NIGHT_CUM)
                if lo_t < self.end_ts - 2 * HOUR
                else (p.app_ts + (self.end_ts - p.app_ts) // 2)
            )
            self.register(p)
            self.life(p, quiet=(takeover - 2 * DAY, takeover + 2 * DAY))
            if self.attacker_devices and rng.random() < 0.3:
                device = rng.choice(self.attacker_devices)  # the same attacker's phone, another victim
            else:
                device = self.device()
                self.attacker_devices.append(device)
            ip = self.ip(_PROXY_FIRST if rng.random() < 0.5 else _IP_FIRST)
            if rng.random() < 0.7:  # guessing or stuffing credentials first
                for _ in range(self.ri(2, 6)):
                    self.login(takeover - self.ri(2 * MINUTE, 30 * MINUTE), p, device, ip, success=False)
            self.login(takeover - self.ri(10, 90), p, device, ip)
            self.ev(takeover, "device_bound", p, device_id=device, ip=ip)
            self.ev(takeover + self.ri(20, 5 * MINUTE), "password_changed", p, device_id=device, ip=ip)
            mule = self.account()
            if rng.random() < 0.8:
                t = takeover + self.ri(6 * MINUTE, 15 * MINUTE)
                amount = int(round(p.requested * rng.uniform(0.6, 1.0), -2))
                self.ev(t, "drawdown", p, device_id=device, ip=ip, amount=float(amount), line_id=p.line_id)
                self.ev(
                    t + self.ri(30, 8 * MINUTE),
                    "transfer_out",
                    p,
                    device_id=device,
                    ip=ip,
                    payee=mule,
                    amount=float(int(amount * rng.uniform(0.95, 1.0))),
                )
            else:  # empties what is there without a new loan
                self.ev(
                    takeover + self.ri(6 * MINUTE, 20 * MINUTE),
                    "transfer_out",
                    p,
                    device_id=device,
                    ip=ip,
                    payee=mule,
                    amount=float(self.ri(2, 20) * 1000),
                )
            if rng.random() < 0.7:  # the real customer notices
                self.ev(
                    takeover + self.ri(2 * HOUR, 3 * DAY),
                    "complaint",
                    p,
                    device_id=p.device,
                    ip=p.home_ip,
                    category="unauthorised",
                )

    def scam_victims(self, n: int) -> None:
        rng = self.rng
        for _ in range(n):
            p = self.person("scam_victim", age=self.ri(22, 64), device=self.device())
            if p.employment in ("student", "unemployed"):
                p.employment = "retired" if rng.random() < 0.5 else "salaried"
            hi = self.end_ts - max(3 * DAY, (self.end_ts - self.start_ts) // 3)
            p.app_ts = self.when(self.start_ts + HOUR, hi)
            lo_t = p.app_ts + 2 * DAY
            scam = (
                self.when(lo_t, self.end_ts - 4 * HOUR)
                if lo_t < self.end_ts - 4 * HOUR
                else (p.app_ts + (self.end_ts - p.app_ts) // 2)
            )
            self.register(p)
            self.life(p, quiet=(scam - 2 * DAY, scam + 2 * DAY))
            device = p.device
            if self.scam_payees and rng.random() < 0.4:
                payee = rng.choice(self.scam_payees)  # a mule account the same scam uses for several victims
            else:
                payee = self.account()
                self.scam_payees.append(payee)
            self.login(scam, p, device, p.home_ip)
            t = scam + self.ri(MINUTE, 30 * MINUTE)
            amount = int(round(p.requested * rng.uniform(0.5, 1.0), -2))
            self.ev(t, "drawdown", p, device_id=device, ip=p.home_ip, amount=float(amount), line_id=p.line_id)
            self.ev(
                t + self.ri(2 * MINUTE, 3 * HOUR),
                "transfer_out",
                p,
                device_id=device,
                ip=p.home_ip,
                payee=payee,
                amount=float(int(amount * rng.uniform(0.75, 1.0))),
            )
            if rng.random() < 0.5:
                self.ev(t + self.ri(DAY, 5 * DAY), "complaint", p, device_id=device, ip=p.home_ip, category="scam")

    # ---------------------------------------------------------------------------------------- assembly

    def build(self) -> World:
        counts = self.c.counts()
        self.rings(counts["ring"])
        self.multi_heads(counts["multi_head"])
        self.cash_outs(counts["cash_out"])
        self.takeovers(counts["takeover"])
        self.scam_victims(counts["scam_victim"])
        self.honest(counts["honest"])
        assert len(self.people) == self.c.customers

        self.people.sort(key=lambda p: (p.app_ts, p.number))
        for p in self.people:
            p.contact_text = self.phone_text(p.contact)
        applications = [self.application(p) for p in self.people]
        times = [self.iso(p.app_ts) for p in self.people]
        contacts = [p.contact_text for p in self.people]
        truth = sorted((p.customer_id, p.typology) for p in self.people)

        self.raw.sort(key=lambda r: r[0])  # stable: equal times keep their (deterministic) generation order
        width = max(8, len(str(len(self.raw))))
        iso = self.iso
        prefix = self.prefix
        events: list[dict[str, Any]] = []
        for i, (ts, event) in enumerate(self.raw, 1):
            event["event_id"] = f"{prefix}e{i:0{width}d}"
            event["occurred_at"] = iso(ts)
            events.append(event)
        self.raw = []
        if self.on_progress is not None:
            self.on_progress(self.c.customers, self.c.customers)
        return World(self.c, applications, times, events, truth, contacts)

    def iso(self, ts: int) -> str:
        return dt.datetime.fromtimestamp(ts, self.tz).isoformat()

    def application(self, p: _Person) -> dict[str, Any]:
        identity: dict[str, Any] = {"id_number": p.id_number, "phone": p.phone_text, "bank_card": p.card_text}
        if p.device is not None:
            identity["device_id"] = p.device
        identity["ip"] = p.app_ip
        if _CONTACT_IN_APPLICATION:
            identity[CONTACT_FIELD] = p.contact_text
        applicant: dict[str, Any] = {"monthly_income": p.income, "employment": p.employment}
        if p.employment_months is not None:
            applicant["employment_months"] = p.employment_months
        body: dict[str, Any] = {
            "application_id": f"{self.prefix}a{p.number:0{self.width}d}",
            "customer_id": p.customer_id,
            "product": "consumer_line",
            "requested_amount": p.requested,
            "language": p.language,
            "identity": identity,
            "applicant": applicant,
        }
        if p.bureau is not None:
            body["bureau"] = dict(p.bureau)
        return body
