"""The feature registry: every feature a policy or model may name, with its type and meaning.

The policy compiler checks names and types against this registry at load time, so a typo in a rule is a
load error rather than a silently false condition in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class FeatureType(StrEnum):
    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    type: FeatureType
    description: str
    group: str
    values: tuple[str, ...] | None = None  # the closed set of values of a categorical string feature


class FeatureRegistry:
    def __init__(self, features: tuple[Feature, ...] = ()) -> None:
        self._features: dict[str, Feature] = {}
        for feature in features:
            self.register(feature)

    def register(self, feature: Feature) -> None:
        if feature.name in self._features:
            raise ValueError(f"feature {feature.name!r} is already registered")
        self._features[feature.name] = feature

    def get(self, name: str) -> Feature | None:
        return self._features.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._features

    def __iter__(self) -> Iterator[Feature]:
        return iter(self._features.values())

    def __len__(self) -> int:
        return len(self._features)

    def names(self) -> list[str]:
        return list(self._features)


EMPLOYMENT_TYPES = ("salaried", "self_employed", "business_owner", "freelance", "student", "retired", "unemployed")

_N, _S, _B = FeatureType.NUMBER, FeatureType.STRING, FeatureType.BOOL

FEATURES = FeatureRegistry(
    (
        # applicant profile
        Feature("age", _N, "Declared age in years.", "applicant"),
        Feature("monthly_income", _N, "Declared monthly income, in the product currency.", "applicant"),
        Feature("employment", _S, "Employment type.", "applicant", EMPLOYMENT_TYPES),
        Feature(
            "employment_months", _N, "Months with the current employer or business; missing if not given.", "applicant"
        ),
        Feature("requested_amount", _N, "Credit line amount asked for; missing if not given.", "applicant"),
        Feature(
            "request_to_income", _N, "requested_amount / monthly_income; missing if either is missing.", "applicant"
        ),
        # identity checks (derived from the raw ID number before it is hashed; missing if only a hash was sent)
        Feature(
            "id_number_valid",
            _B,
            "Raw ID number passes the GB 11643 check digit and has a real birth date.",
            "identity",
        ),
        Feature("id_age_gap", _N, "Years between declared age and the age implied by the ID number.", "identity"),
        Feature("has_device_id", _B, "The application carries a device id.", "identity"),
        # credit bureau summary
        Feature("bureau_inquiries_7d", _N, "Lenders that inquired in the last 7 days.", "bureau"),
        Feature("bureau_inquiries_30d", _N, "Lenders that inquired in the last 30 days.", "bureau"),
        Feature("bureau_inquiries_90d", _N, "Lenders that inquired in the last 90 days.", "bureau"),
        Feature("bureau_active_loans", _N, "Active loans at other lenders.", "bureau"),
        Feature("bureau_total_debt", _N, "Total outstanding debt at other lenders.", "bureau"),
        Feature("bureau_worst_dpd", _N, "Worst days past due on the bureau record.", "bureau"),
        Feature("bureau_hit", _B, "A credit bureau summary was supplied.", "bureau"),
        Feature("debt_to_income", _N, "bureau_total_debt / (12 × monthly_income).", "bureau"),
        # the periodic community job (``fengkong graph communities``)
        Feature(
            "graph_community_size",
            _N,
            "Customers in this customer's community at the last batch run "
            "(Louvain on the link graph); missing when in none of 3 or more.",
            "graph",
        ),
        # internal lists (identifiers as keyed hashes) and victim protection
        Feature("list_blacklist_hit", _B, "An identifier or the customer is on the internal blacklist.", "lists"),
        Feature("list_watchlist_hit", _B, "An identifier or the customer is on the internal watchlist.", "lists"),
        Feature("customer_protected", _B, "The customer is a recorded scam or identity-theft victim.", "lists"),
        # model output
        Feature("score", _N, "The policy's scorecard score (higher is better).", "model"),
    )
)
