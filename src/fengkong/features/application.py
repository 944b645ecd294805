"""Features computed from an application itself (profile, identity checks, bureau summary)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fengkong.applications import ApplicationIn
from fengkong.pii import IdFacts


def application_features(app: ApplicationIn, id_facts: IdFacts | None, today: dt.date) -> dict[str, Any]:
    a, b = app.applicant, app.bureau
    income = a.monthly_income
    id_age = id_facts.age_on(today) if id_facts is not None and id_facts.valid else None
    gap = None if id_age is None or a.age is None else float(abs(id_age - a.age))
    age = a.age if a.age is not None else id_age
    return {
        "age": None if age is None else float(age),
        "monthly_income": income,
        "employment": a.employment,
        "employment_months": None if a.employment_months is None else float(a.employment_months),
        "requested_amount": app.requested_amount,
        "request_to_income": None if app.requested_amount is None or income == 0 else app.requested_amount / income,
        "id_number_valid": None if id_facts is None else id_facts.valid,
        "id_age_gap": gap,
        "has_device_id": app.identity.device_id is not None,
        "bureau_hit": b is not None,
        "bureau_inquiries_7d": None if b is None else float(b.inquiries_7d),
        "bureau_inquiries_30d": None if b is None else float(b.inquiries_30d),
        "bureau_inquiries_90d": None if b is None else float(b.inquiries_90d),
        "bureau_active_loans": None if b is None else float(b.active_loans),
        "bureau_total_debt": None if b is None else b.total_debt,
        "bureau_worst_dpd": None if b is None else float(b.worst_delinquency_days),
        "debt_to_income": None if b is None or income == 0 else b.total_debt / (12 * income),
    }
