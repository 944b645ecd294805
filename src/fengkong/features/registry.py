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
        self.types: dict[str, FeatureType] = {}  # name → type, read per row by the row evaluator
        for feature in features:
            self.register(feature)

    def register(self, feature: Feature) -> None:
        if feature.name in self._features:
            raise ValueError(f"feature {feature.name!r} is already registered")
        self._features[feature.name] = feature
        self.types[feature.name] = feature.type

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
        # live credit lines: the behaviour features of portfolio line review (issue 5)
        Feature("line_limit", _N, "The line's current limit.", "line"),
        Feature("line_outstanding", _N, "Balance drawn and not yet repaid on the line.", "line"),
        Feature("line_utilisation", _N, "line_outstanding / line_limit (0 when the limit is 0).", "line"),
        Feature("line_months_on_book", _N, "Whole months since the line was opened.", "line"),
        Feature("line_days_past_due", _N, "Days past due today, worst over the line's loans (0 if current).", "line"),
        Feature("line_max_dpd_12m", _N, "Worst days past due over the last 12 months.", "line"),
        Feature("line_missed_payments_12m", _N, "Instalments paid late or missed over the last 12 months.", "line"),
        Feature(
            "line_inquiries_growth",
            _N,
            "Bureau inquiries in the last 30 days now, minus the same figure when the line was opened (多头借贷).",
            "line",
        ),
        Feature(
            "line_income_change",
            _N,
            "Relative change of monthly income since the line was opened (-0.3: down 30 %); missing if unknown.",
            "line",
        ),
        Feature("line_risk_events_30d", _N, "Risk alerts raised on the customer in the last 30 days.", "line"),
        Feature("behaviour_score", _N, "The policy's behaviour scorecard score (higher is better).", "line"),
        # a drawdown on a live line, at the moment it is asked for
        Feature("drawdown_amount", _N, "The amount asked for.", "drawdown"),
        Feature("drawdown_share_of_available", _N, "drawdown_amount / the line's available amount.", "drawdown"),
        Feature(
            "drawdown_new_payee", _B, "The proceeds go to an account this customer never sent money to.", "drawdown"
        ),
        Feature(
            "drawdown_call_in_progress", _B, "The app reports a phone call in progress while drawing down.", "drawdown"
        ),
        Feature("drawdown_line_months_on_book", _N, "Whole months since the line was opened.", "drawdown"),
        Feature(
            "drawdown_new_device",
            _B,
            "The drawdown comes from a device this customer was never seen on (no application, login, binding, "
            "payment or drawdown from it); false when no device id is given.",
            "drawdown",
        ),
        # post-loan: the customer's loans as of the event or the early-warning scan (issue 6, fengkong.loans)
        Feature("loan_active_count", _N, "Loans the customer has on book (active or written off).", "loan"),
        Feature("loan_outstanding", _N, "Principal not yet repaid over the customer's loans.", "loan"),
        Feature("loan_dpd", _N, "Days past due now, worst over the customer's loans (0 if all current).", "loan"),
        Feature("loan_max_dpd", _N, "Worst days past due any of the customer's loans ever reached.", "loan"),
        Feature(
            "loan_bucket",
            _S,
            "Delinquency bucket of loan_dpd: current, M1 (1-30), M2, M3, M3+ (>90).",
            "loan",
            ("current", "M1", "M2", "M3", "M3+"),
        ),
        Feature(
            "loan_missed_first_payment", _B, "A loan's first instalment was not paid in full by its due date.", "loan"
        ),
        Feature("loan_new_loans_30d", _N, "Loans the customer started in the last 30 days.", "loan"),
        Feature(
            "loan_proceeds_forbidden_share_30d",
            _N,
            "Share of the principal of loans started in the last 30 days that the customer moved within 30 days to "
            "another lender, a securities account or property (transfer_out events by payee_category).",
            "loan",
        ),
        # the same, one use at a time: a product's policy names the uses it forbids
        Feature("loan_proceeds_lender_share_30d", _N, "As above, to another lender only (转贷).", "loan"),
        Feature("loan_proceeds_securities_share_30d", _N, "As above, to a securities account only.", "loan"),
        Feature("loan_proceeds_property_share_30d", _N, "As above, to property only.", "loan"),
        Feature(
            "loan_utilisation",
            _N,
            "Principal drawn on the customer's credit lines and not yet repaid, over their limits; missing without "
            "an active or frozen line.",
            "loan",
        ),
        Feature(
            "loan_utilisation_change_30d",
            _N,
            "loan_utilisation now minus 30 days ago, both against today's limits (0.4: 40 points more drawn).",
            "loan",
        ),
        Feature(
            "loan_income_change",
            _N,
            "Latest income verified in the last year (bureau_update) against the income when the oldest open line "
            "opened (-0.4: down 40 %); missing if unknown.",
            "loan",
        ),
    )
)
