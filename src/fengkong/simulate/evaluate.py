"""Replay a synthetic world through the engine and measure detection against its ground truth.

Events and applications are merged in time order: each application is decided as at its own time
(``Engine.decide(..., as_of=...)``) after every event before it has been ingested, so the features a
decision sees are exactly those the live system would have had. Recall is measured per typology, precision
per signal (a decision reason or an event trigger), and the false-positive rate on honest customers with
the noise that must not look like fraud (shared office IPs, family phones).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fengkong.errors import FengkongError
from fengkong.reasons import Category, reason
from fengkong.service import Engine
from fengkong.simulate.world import FRAUD_TYPOLOGIES, World

# Reason categories that say "this looks like fraud" (not credit quality): the detection signals.
FRAUD_CATEGORIES = {Category.FRAUD, Category.IDENTITY, Category.MULTI_HEAD}


@dataclass
class Replay:
    outcomes: dict[str, str] = field(default_factory=dict)  # customer → outcome of their (last) application
    signals: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # customer → signal names
    events: int = 0
    rejected_events: int = 0
    rejected_applications: int = 0


def replay(world: World, engine: Engine, on_progress: Callable[[int, int], None] | None = None) -> Replay:
    result = Replay()
    app_times = [dt.datetime.fromisoformat(t) for t in world.application_times]
    events = world.events
    e = 0
    total = len(world.applications)
    for i, (body, when) in enumerate(zip(world.applications, app_times, strict=True)):
        batch = []
        while e < len(events) and dt.datetime.fromisoformat(events[e]["occurred_at"]) <= when:
            batch.append(events[e])
            e += 1
        _ingest(engine, batch, result)
        try:
            decision = engine.decide(body, actor="replay", as_of=when)
        except FengkongError:  # counted: a world must only hold valid applications
            result.rejected_applications += 1
            continue
        result.outcomes[decision.customer_id] = decision.outcome.value
        for code in decision.reasons:
            if decision.outcome.value != "approve" and reason(code).category in FRAUD_CATEGORIES:
                result.signals[decision.customer_id].add(f"decision:{code}")
        if on_progress is not None and i % 200 == 0:
            on_progress(i, total)
    _ingest(engine, events[e:], result)
    for alert in engine.list_alerts(limit=1_000_000):
        result.signals[alert["customer_id"]].add(f"trigger:{alert['trigger_id']}")
    return result


def _ingest(engine: Engine, batch: list[dict[str, Any]], result: Replay) -> None:
    for start in range(0, len(batch), 5000):
        chunk = batch[start : start + 5000]
        if chunk:
            outcome = engine.ingest(chunk, actor="replay")
            result.events += len(outcome.accepted)
            result.rejected_events += len(outcome.rejected)


@dataclass
class DetectionReport:
    rows: list[dict[str, Any]]  # per typology
    signals: list[dict[str, Any]]  # per signal
    honest_noise: dict[str, Any]

    def markdown(self) -> str:
        lines = [
            "| typology | customers | flagged at application | flagged by a trigger | flagged (either) | recall |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.rows:
            lines.append(
                f"| {r['typology']} | {r['customers']} | {r['at_application']} | {r['by_trigger']} | "
                f"{r['flagged']} | {r['recall']:.1%} |"
            )
        lines += [
            "",
            "| signal | customers flagged | of them fraud or victim | precision |",
            "| --- | ---: | ---: | ---: |",
        ]
        for s in self.signals:
            lines.append(f"| `{s['signal']}` | {s['flagged']} | {s['true']} | {s['precision']:.1%} |")
        h = self.honest_noise
        lines += [
            "",
            f"Honest customers: {h['honest']}; flagged by a fraud signal: {h['flagged']} ({h['rate']:.2%}). "
            f"Of the {h['shared_ip']} behind a shared office IP, {h['shared_ip_flagged']} flagged; of the "
            f"{h['shared_phone']} sharing a family phone, {h['shared_phone_flagged']} flagged.",
        ]
        return "\n".join(lines)


def detection_report(world: World, result: Replay) -> DetectionReport:
    truth = dict(world.truth)
    by_type: dict[str, list[str]] = defaultdict(list)
    for customer, typology in world.truth:
        by_type[typology].append(customer)
    rows = []
    for typology in FRAUD_TYPOLOGIES:
        customers = by_type.get(typology, [])
        at_app = sum(1 for c in customers if any(s.startswith("decision:") for s in result.signals.get(c, ())))
        by_trigger = sum(1 for c in customers if any(s.startswith("trigger:") for s in result.signals.get(c, ())))
        flagged = sum(1 for c in customers if result.signals.get(c))
        rows.append(
            {
                "typology": typology,
                "customers": len(customers),
                "at_application": at_app,
                "by_trigger": by_trigger,
                "flagged": flagged,
                "recall": flagged / len(customers) if customers else 0.0,
            }
        )
    per_signal: Counter[str] = Counter()
    per_signal_true: Counter[str] = Counter()
    for customer, names in result.signals.items():
        for name in names:
            per_signal[name] += 1
            if truth.get(customer, "honest") != "honest":
                per_signal_true[name] += 1
    signals = [
        {"signal": name, "flagged": n, "true": per_signal_true[name], "precision": per_signal_true[name] / n}
        for name, n in sorted(per_signal.items(), key=lambda kv: -kv[1])
    ]
    honest = by_type.get("honest", [])
    shared_ip, shared_phone = honest_noise_groups(world, set(honest))
    flagged_honest = {c for c in honest if result.signals.get(c)}
    noise = {
        "honest": len(honest),
        "flagged": len(flagged_honest),
        "rate": len(flagged_honest) / max(1, len(honest)),
        "shared_ip": len(shared_ip),
        "shared_ip_flagged": len(shared_ip & flagged_honest),
        "shared_phone": len(shared_phone),
        "shared_phone_flagged": len(shared_phone & flagged_honest),
    }
    return DetectionReport(rows, signals, noise)


def honest_noise_groups(world: World, honest: set[str]) -> tuple[set[str], set[str]]:
    """Honest customers behind an IP or a phone that other honest customers use too."""
    by_ip: dict[str, set[str]] = defaultdict(set)
    by_phone: dict[str, set[str]] = defaultdict(set)
    for body in world.applications:
        customer = body["customer_id"]
        if customer not in honest:
            continue
        identity = body["identity"]
        if identity.get("ip"):
            by_ip[identity["ip"]].add(customer)
        if identity.get("phone"):
            by_phone["".join(ch for ch in identity["phone"] if ch.isdigit())[-11:]].add(customer)
    shared_ip = {c for group in by_ip.values() if len(group) >= 5 for c in group}
    shared_phone = {c for group in by_phone.values() if 2 <= len(group) <= 3 for c in group}
    return shared_ip, shared_phone
