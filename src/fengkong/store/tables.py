"""Table definitions. Migrations in ``migrations/versions`` create exactly these; a test holds them equal."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = sa.DateTime(timezone=True)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=False),  # the champion: decides by default
    sa.Column("role", sa.String(16), nullable=True),  # "challenger" (takes `share` of customers) or "shadow"
    sa.Column("share", sa.Float, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("application_id", sa.String(64), nullable=True, unique=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", Timestamp, nullable=False, index=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("limit_amount", sa.Float, nullable=True),
    sa.Column("apr", sa.Float, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("rule_hits", sa.JSON, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),  # the request with identifiers replaced by keyed hashes
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("identity_encrypted", sa.Text, nullable=True),  # raw identifiers, Fernet-encrypted
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    # champion, challenger, pinned (the request named a version) or shadow (decided, stored, never acted on)
    sa.Column("assignment", sa.String(16), nullable=True),
    sa.Column("shadow_of", sa.String(40), nullable=True, index=True),  # the live decision a shadow one mirrors
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=False, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

# One row: the chain's tip. Updating it first in every appending transaction serialises appenders on both
# SQLite (write lock) and PostgreSQL (row lock), and lets `verify` notice entries cut from the end.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("occurred_at", Timestamp, nullable=False, index=True),
    sa.Column("received_at", Timestamp, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),  # the event with identifiers replaced by keyed hashes
)

# Internal lists of identifiers (as keyed hashes): blacklist (decline), watchlist (review). Victims of scams
# and identity theft are recorded as protected, never listed as fraudsters.
risk_lists = sa.Table(
    "risk_lists",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("list", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, index=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("removed_at", Timestamp, nullable=True),
)

protected_customers = sa.Table(
    "protected_customers",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# What event triggers raised: an alert, a case to open or a line to freeze, with the evidence.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False, index=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("trigger_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
)

# Communities found by the periodic batch job (Louvain on the customer link graph): group ids for rules and
# for analysts. Replaced whole by each run.
graph_groups = sa.Table(
    "graph_groups",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("group_id", sa.Integer, nullable=False, index=True),
    sa.Column("group_size", sa.Integer, nullable=False),
    sa.Column("computed_at", Timestamp, nullable=False),
)

# ----------------------------------------------------------------------------------- lines (issue 5, 0006)

# A live credit line. ``available`` is derived (limit − outstanding while active, 0 otherwise), never stored.
credit_lines = sa.Table(
    "credit_lines",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("decision_id", sa.String(40), nullable=True, unique=True),  # the approval that opened it
    sa.Column("status", sa.String(16), nullable=False),  # active | frozen | closed
    sa.Column("limit_amount", sa.Float, nullable=False),
    sa.Column("outstanding", sa.Float, nullable=False),
    sa.Column("apr", sa.Float, nullable=True),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("opened_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("review_due_on", sa.Date, nullable=True),  # frozen: reviewed again by this date
    sa.Column("pending_limit", sa.Float, nullable=True),  # a decrease given notice of, not yet in effect
    sa.Column("pending_effective_on", sa.Date, nullable=True),
    sa.Column("last_increase_on", sa.Date, nullable=True),
    sa.Column("ever_restricted", sa.Boolean, nullable=False, default=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("opening", sa.JSON, nullable=False),  # features at opening: the base of growth features
    sa.Column("seq", sa.Integer, nullable=False),  # actions so far; a compare-and-set guard against races
)

# Every change to a line: who or what made it, why (reason codes), on what evidence, and what the customer was told.
line_actions = sa.Table(
    "line_actions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("line_id", sa.String(40), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("effective_on", sa.Date, nullable=True),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("limit_before", sa.Float, nullable=True),
    sa.Column("limit_after", sa.Float, nullable=False),
    sa.Column("actor_kind", sa.String(16), nullable=False),  # decision | review | trigger | analyst | case | system
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("notice", sa.JSON, nullable=False),  # {"zh": ..., "en": ...}
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("policy_version", sa.String(64), nullable=True),
    sa.Column("review_run_id", sa.String(40), nullable=True, index=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("line_id", "seq", name="uq_line_actions_line_seq"),
    sa.UniqueConstraint("review_run_id", "line_id", name="uq_line_actions_run_line"),  # no line acted on twice
)

line_review_runs = sa.Table(
    "line_review_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | completed
    sa.Column("lines_total", sa.Integer, nullable=False),
    sa.Column("lines_acted", sa.Integer, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("completed_at", Timestamp, nullable=True),
)

# ----------------------------------------------------------------------------------- models (issue 4, 0007)

# The model registry: one row per NAME@VERSION, immutable once registered. ``artefact`` is the whole model as text
# (a scorecard's JSON table, or a GBDT's JSON holding LightGBM's text model); its sha256 is checked on every load.
models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(48), primary_key=True),
    sa.Column("version", sa.String(16), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # scorecard | gbdt
    sa.Column("artefact", sa.Text, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("data_fingerprint", sa.String(64), nullable=False),  # sha256 of the training table
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),  # the features the model reads, in its order
    sa.Column("metrics", sa.JSON, nullable=False),  # AUC, KS, Gini, Brier on train and validation, IV, PSI
    sa.Column("training", sa.JSON, nullable=False),  # rows, split, parameters, stability baseline for monitoring
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

# ----------------------------------------------------------------------------------- loans (issue 6, 0008)

# Money is held in integer cents (分) so both databases store it exactly; rates as decimal text ("0.12").
loans = sa.Table(
    "loans",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("line_id", sa.String(64), nullable=True, index=True),  # the credit line it was drawn on, if any
    sa.Column("principal_cents", sa.BigInteger, nullable=False),
    sa.Column("apr", sa.String(16), nullable=False),
    sa.Column("penalty_apr", sa.String(16), nullable=False),
    sa.Column("term", sa.Integer, nullable=False),
    sa.Column("method", sa.String(24), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),  # the customer's IANA zone: local dates, contact hours
    sa.Column("status", sa.String(16), nullable=False),  # active, paid_off, closed, written_off
    sa.Column("status_on", sa.Date, nullable=True),  # the day it was paid off, closed or written off
    sa.Column("status_reason", sa.String(64), nullable=True),
    sa.Column("last_repaid_on", sa.Date, nullable=True),  # repayments are applied in date order
    sa.Column("request_hash", sa.String(64), nullable=False),  # opening the same loan_id twice must agree
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

loan_instalments = sa.Table(
    "loan_instalments",
    metadata,
    sa.Column("loan_id", sa.String(64), sa.ForeignKey("loans.id"), primary_key=True),
    sa.Column("period", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("due_date", sa.Date, nullable=False, index=True),
    sa.Column("principal_cents", sa.BigInteger, nullable=False),
    sa.Column("interest_cents", sa.BigInteger, nullable=False),
    sa.Column("penalty_cents", sa.BigInteger, nullable=False),  # penalty interest accrued through penalty_to
    sa.Column("principal_paid_cents", sa.BigInteger, nullable=False),
    sa.Column("interest_paid_cents", sa.BigInteger, nullable=False),
    sa.Column("penalty_paid_cents", sa.BigInteger, nullable=False),
    sa.Column("penalty_to", sa.Date, nullable=True),
    sa.Column("paid_on", sa.Date, nullable=True),  # the day interest and principal were paid in full
)

loan_repayments = sa.Table(
    "loan_repayments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the lender's repayment id: a retry is applied once
    sa.Column("loan_id", sa.String(64), sa.ForeignKey("loans.id"), nullable=False, index=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("paid_on", sa.Date, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # instalment or prepayment
    sa.Column("allocation", sa.JSON, nullable=False),  # penalty / interest / principal per instalment
    sa.Column("source", sa.String(80), nullable=False),  # the API key, the CLI or the event that carried it
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# Every collection contact and every refused attempt, with the reason it was refused.
collection_contacts = sa.Table(
    "collection_contacts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("loan_id", sa.String(64), sa.ForeignKey("loans.id"), nullable=False, index=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("attempted_at", Timestamp, nullable=False),
    sa.Column("local_date", sa.Date, nullable=False),  # the customer's local day, for the per-day limits
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("party", sa.String(24), nullable=False),
    sa.Column("dpd", sa.Integer, nullable=False),
    sa.Column("bucket", sa.String(8), nullable=False),
    sa.Column("collector", sa.String(64), nullable=False),
    sa.Column("allowed", sa.Boolean, nullable=False),
    sa.Column("refusal", sa.String(32), nullable=True),
    sa.Column("result", sa.String(24), nullable=True),  # e.g. promise_to_pay, no_answer
)

# A complaint about a collector pauses every contact with the customer until someone lifts the pause.
collection_pauses = sa.Table(
    "collection_pauses",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("source", sa.String(80), nullable=False),  # the complaint event id or who paused
    sa.Column("case_id", sa.String(64), nullable=True),
    sa.Column("paused_at", Timestamp, nullable=False),
    sa.Column("lifted_at", Timestamp, nullable=True),
    sa.Column("lifted_by", sa.String(64), nullable=True),
)

# ----------------------------------------------------------------------------------- cases (issue 7, 0009)

# The case queue: reviews, held drawdowns, fraud and early-warning alerts, appeals and complaints. ``source`` names
# what opened the case (a decision, an alert, an event, an appeal) and is unique: one source never opens two cases.
# ``seq`` counts the case's actions and guards every change (compare-and-set), so two analysts cannot both win.
cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),  # open, claimed, pending_second_approval, resolved
    sa.Column("priority", sa.Integer, nullable=False),  # 1 (urgent) .. 4 (low)
    sa.Column("customer_id", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(128), nullable=False, unique=True),
    sa.Column("decision_id", sa.String(40), nullable=True, index=True),
    sa.Column("alert_id", sa.String(40), nullable=True),
    sa.Column("line_id", sa.String(40), nullable=True),
    sa.Column("line_action_id", sa.String(40), nullable=True),
    sa.Column("event_id", sa.String(64), nullable=True),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("message_encrypted", sa.Text, nullable=True),  # the customer's own words (appeals): Fernet-encrypted
    sa.Column("language", sa.String(2), nullable=False),
    sa.Column("assignee", sa.String(64), nullable=True),
    sa.Column("opened_by", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("due_at", Timestamp, nullable=False, index=True),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("proposal", sa.JSON, nullable=True),  # a resolution waiting for its second analyst
    sa.Column("result", sa.JSON, nullable=True),  # what the resolution changed (override decision, line, lists)
    sa.Column("seq", sa.Integer, nullable=False),
)

# Every step of a case (opened, claimed, released, resolved, proposed, approved, returned), each in the audit chain.
case_actions = sa.Table(
    "case_actions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("case_id", sa.String(40), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.UniqueConstraint("case_id", "seq", name="uq_case_actions_case_seq"),
)

# ----------------------------------------------------------------------------------- console (issue 7, 0010)

# Console logins: a password is kept only as an scrypt hash with its own salt; a session only as the SHA-256 of
# its random token (the cookie holds the token itself).
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("disabled_at", Timestamp, nullable=True),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(40), sa.ForeignKey("console_users.id"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False, index=True),
)

# Failed sign-ins per login name (known or not, so that a lockout does not tell which names exist).
console_login_failures = sa.Table(
    "console_login_failures",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failed_at", Timestamp, nullable=False),
    sa.Column("locked_until", Timestamp, nullable=True),
)
