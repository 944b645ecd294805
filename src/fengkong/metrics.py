"""Prometheus metrics, registered once per process. Labels never carry personal data."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DECISIONS = Counter("fengkong_decisions_total", "Decisions made", ["kind", "outcome", "policy_version"])
DECISION_SECONDS = Histogram(
    "fengkong_decision_seconds",
    "Time to decide and persist one decision, in-process",
    ["kind"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
REJECTED = Counter("fengkong_rejected_requests_total", "Requests refused with a 4xx error", ["code"])
EVENTS = Counter("fengkong_events_total", "Events stored and counted (duplicates excluded)")
ALERTS = Counter("fengkong_alerts_total", "Alerts raised by event triggers", ["trigger", "action"])
